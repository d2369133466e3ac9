pub mod criteria;
