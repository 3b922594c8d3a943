-- Postgres enables row-level security here; SQLite has no roles. Keeps the numbering aligned.
SELECT 1;
