"""The results store: schema, migrations, one committed row per result."""
