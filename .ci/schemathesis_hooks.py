"""schemathesis hooks for .ci/schemathesis (loaded through SCHEMATHESIS_HOOKS).

PUT /api/v1/playbook takes the playbook as `application/toml` text, which
schemathesis has no serializer for: send it as plain text.
"""

import schemathesis

schemathesis.serializer.alias("application/toml", "text/plain")
