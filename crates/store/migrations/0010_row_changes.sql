-- In-place updates, for readers that keep the history in memory (the
-- server's warm model). Inserts are found by id (larger than the last one
-- seen) and transitions are never updated, so only an UPDATE of a fact row
-- needs a record: a trigger appends (table, row id) here, whoever writes.
CREATE TABLE row_changes (
    seq {{id}},
    tbl TEXT NOT NULL,
    row_id BIGINT NOT NULL
);

-- sqlite:begin
CREATE TRIGGER people_changed AFTER UPDATE ON people BEGIN INSERT INTO row_changes (tbl, row_id) VALUES ('people', NEW.id); END;
CREATE TRIGGER accounts_changed AFTER UPDATE ON accounts BEGIN INSERT INTO row_changes (tbl, row_id) VALUES ('accounts', NEW.id); END;
CREATE TRIGGER touches_changed AFTER UPDATE ON touches BEGIN INSERT INTO row_changes (tbl, row_id) VALUES ('touches', NEW.id); END;
CREATE TRIGGER activities_changed AFTER UPDATE ON activities BEGIN INSERT INTO row_changes (tbl, row_id) VALUES ('activities', NEW.id); END;
CREATE TRIGGER deals_changed AFTER UPDATE ON deals BEGIN INSERT INTO row_changes (tbl, row_id) VALUES ('deals', NEW.id); END;
CREATE TRIGGER campaigns_changed AFTER UPDATE ON campaigns BEGIN INSERT INTO row_changes (tbl, row_id) VALUES ('campaigns', NEW.id); END;
-- sqlite:end

-- postgres:begin
CREATE FUNCTION tandem_row_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO row_changes (tbl, row_id) VALUES (TG_TABLE_NAME, NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER people_changed AFTER UPDATE ON people FOR EACH ROW EXECUTE FUNCTION tandem_row_changed();
CREATE TRIGGER accounts_changed AFTER UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION tandem_row_changed();
CREATE TRIGGER touches_changed AFTER UPDATE ON touches FOR EACH ROW EXECUTE FUNCTION tandem_row_changed();
CREATE TRIGGER activities_changed AFTER UPDATE ON activities FOR EACH ROW EXECUTE FUNCTION tandem_row_changed();
CREATE TRIGGER deals_changed AFTER UPDATE ON deals FOR EACH ROW EXECUTE FUNCTION tandem_row_changed();
CREATE TRIGGER campaigns_changed AFTER UPDATE ON campaigns FOR EACH ROW EXECUTE FUNCTION tandem_row_changed();
-- postgres:end
