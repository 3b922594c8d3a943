-- Row-level security on every table of the collector's schema, with no policy: a role that does
-- not own the tables (Supabase's anon and authenticated, a dashboard's reader) sees no row and
-- writes none unless a policy is added on purpose. The owner the collector connects as is not
-- subject to RLS (ENABLE, not FORCE), so nothing changes for the collector itself.
-- Every table of the schema, so tables added by earlier migrations are covered whatever they are;
-- a later migration that creates a table must enable RLS on it too (a test checks).
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', current_schema(), t.tablename);
    END LOOP;
END
$$;
