"""Hostile queries a tenant query must never get away with, shared by the logic and HTTP tests.

Each entry: (name, sql, expected). `sql` may name `{other}` (another tenant's database file),
`{other_db}` (its database name), `{own}` (the queried tenant's own file) and `{dir}` (the folder).

expected:
- "rejected": refused at submit (400 invalid_sql) by the SQL guard;
- "too_large": refused at submit by request validation (400 invalid_request);
- "error": passes the guard but is stopped where it runs (the tenant reports an error, no rows);
- "harmless": runs, and returns exactly what DuckDB returns on the tenant's own file alone.
"""

from __future__ import annotations

CORPUS: list[tuple[str, str, str]] = [
    # files and URLs through table functions
    ("read_csv", "SELECT * FROM read_csv('/etc/passwd')", "rejected"),
    ("read_csv_auto", "SELECT * FROM read_csv_auto('/etc/passwd', header=false)", "rejected"),
    ("read_text_environ", "SELECT content FROM read_text('/proc/self/environ')", "rejected"),
    ("read_blob_other_tenant", "SELECT content FROM read_blob('{other}')", "rejected"),
    ("read_blob_own_file", "SELECT size FROM read_blob('{own}')", "rejected"),
    ("read_parquet_url", "SELECT * FROM read_parquet('https://example.com/x.parquet')", "rejected"),
    ("read_json_s3", "SELECT * FROM read_json('s3://some-bucket/secrets.json')", "rejected"),
    ("glob_folder", "SELECT * FROM glob('{dir}/*')", "rejected"),
    ("read_duckdb_other", "SELECT * FROM read_duckdb('{other}', table_name='person')", "rejected"),
    ("sniff_csv", "SELECT * FROM sniff_csv('/etc/hosts')", "rejected"),
    ("parquet_metadata", "SELECT * FROM parquet_metadata('/tmp/x.parquet')", "rejected"),
    ("query_string", "SELECT * FROM query('SELECT * FROM read_text(''/etc/passwd'')')", "rejected"),
    ("query_table", "SELECT * FROM query_table('person')", "rejected"),
    # paths and URLs written as table names
    ("from_path", "SELECT * FROM '/etc/passwd'", "rejected"),
    ("from_other_tenant_file", "FROM '{other}'", "rejected"),
    ("from_quoted_identifier_path", 'SELECT * FROM "{other}"', "rejected"),
    ("from_url", "SELECT * FROM 'https://example.com/data.csv'", "rejected"),
    ("from_relative_csv", "SELECT * FROM 'people.csv'", "rejected"),
    ("join_path", "SELECT p.id FROM person p JOIN '/etc/passwd' x ON true", "rejected"),
    ("summarize_path", "SUMMARIZE '/etc/passwd'", "rejected"),
    # other databases by catalog name, system and temp catalogs, metadata
    ("other_catalog", "SELECT * FROM {other_db}.main.person", "rejected"),
    ("other_catalog_two_part", "SELECT * FROM {other_db}.person", "rejected"),
    ("tenant_alias_qualified", "SELECT * FROM tenant.main.person", "rejected"),
    ("memory_catalog", "SELECT * FROM memory.main.person", "rejected"),
    ("system_catalog", "SELECT * FROM system.main.duckdb_tables", "rejected"),
    ("temp_catalog", "SELECT * FROM temp.main.anything", "rejected"),
    ("information_schema", "SELECT table_catalog, table_name FROM information_schema.tables", "rejected"),
    ("pg_settings", "SELECT name, setting FROM pg_settings", "rejected"),
    ("duckdb_databases_view", "SELECT * FROM duckdb_databases", "rejected"),
    ("duckdb_secrets", "SELECT * FROM duckdb_secrets()", "rejected"),
    ("duckdb_settings", "SELECT name, value FROM duckdb_settings()", "rejected"),
    ("pragma_database_list", "SELECT * FROM pragma_database_list", "rejected"),
    ("show_databases", "SHOW DATABASES", "rejected"),
    ("show_all_tables", "SHOW ALL TABLES", "rejected"),
    ("enum_type_from_other_catalog", "SELECT 'x'::{other_db}.main.mood", "rejected"),
    # settings, environment, variables, sequences
    ("current_setting", "SELECT current_setting('allowed_paths')", "rejected"),
    ("getenv", "SELECT getenv('AWS_SECRET_ACCESS_KEY')", "rejected"),
    ("getvariable", "SELECT getvariable('anything')", "rejected"),
    ("nextval", "SELECT nextval('some_sequence')", "rejected"),
    ("disable_logging", "SELECT * FROM disable_logging()", "rejected"),
    ("sleep", "SELECT pg_sleep(60)", "rejected"),
    # hidden inside subqueries, CTEs, lambdas, DESCRIBE, PIVOT
    ("cte_read_text", "WITH x AS (SELECT * FROM read_text('/etc/hostname')) SELECT * FROM x", "rejected"),
    ("scalar_subquery", "SELECT (SELECT count(*) FROM read_blob('{other}')) AS n", "rejected"),
    ("lambda_subquery", "SELECT list_transform([1], x -> (SELECT count(*) FROM glob('/*')))", "rejected"),
    ("describe_read_csv", "DESCRIBE SELECT * FROM read_csv('/etc/passwd')", "rejected"),
    ("pivot_source", "PIVOT (SELECT * FROM read_csv('/etc/passwd')) ON column0 IN ('root') USING count(*)",
     "rejected"),
    ("lateral", "SELECT * FROM person, LATERAL (SELECT * FROM read_text('/etc/hostname'))", "rejected"),
    # statements that write, attach, load, set or export
    ("attach", "ATTACH '{other}' AS stolen (READ_ONLY)", "rejected"),
    ("attach_after_select", "SELECT 1; ATTACH '{other}' AS stolen", "rejected"),
    ("copy_to", "COPY person TO '/tmp/stolen.csv'", "rejected"),
    ("copy_query_to", "COPY (SELECT * FROM person) TO '{dir}/stolen.parquet'", "rejected"),
    ("export_database", "EXPORT DATABASE '/tmp/dump'", "rejected"),
    ("create_table", "CREATE TABLE stolen AS SELECT * FROM person", "rejected"),
    ("insert", "INSERT INTO person (id) VALUES (-1)", "rejected"),
    ("install", "INSTALL httpfs", "rejected"),
    ("load_path", "LOAD '/tmp/evil.duckdb_extension'", "rejected"),
    ("set_external_access", "SET enable_external_access = true", "rejected"),
    ("pragma", "PRAGMA database_list", "rejected"),
    ("call", "CALL pragma_version()", "rejected"),
    # comment and unicode tricks
    ("comment_split", "SELECT * FROM read_csv/**/('/etc/passwd')", "rejected"),
    ("quoted_function_name", 'SELECT * FROM "READ_CSV"(\'/etc/passwd\')', "rejected"),
    ("fullwidth_function", "SELECT * FROM ｒｅａｄ_csv('/etc/passwd')", "rejected"),
    # DuckDB reads the zero-width space as a separator: `FROM read AS _csv(...)`, a table that does not exist.
    ("zero_width_function", "SELECT * FROM read\u200b_csv('/etc/passwd')", "error"),
    ("attach_in_comment", "SELECT 42 AS answer /* ; ATTACH '{other}' AS stolen */", "harmless"),
    ("attach_in_dollar_string", "SELECT $$; ATTACH '{other}' AS stolen; $$ AS text", "harmless"),
    ("attach_in_line_comment", "SELECT count(*) AS n FROM person -- ; ATTACH '{other}' AS stolen", "harmless"),
    ("homoglyph_table", "SELECT * FROM pеrson", "error"),  # Cyrillic е: no such table
    # resource bombs: stopped by the per-query timeout or memory limit
    ("recursive_cte_bomb", "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
     "error"),
    ("cross_join_bomb", "SELECT count(*) FROM range(100000000) a, range(100000000) b, person", "error"),
    ("huge_repeat", "SELECT length(repeat('x', 2000000000)) AS n", "error"),
    ("huge_lpad", "SELECT length(lpad('x', 2000000000, 'y')) AS n", "error"),
    ("huge_json", "SELECT length(to_json(range(50000000))) AS n", "error"),
    ("oversized_literal", "SELECT '" + "x" * 120_000 + "' AS big", "too_large"),
]
