-- Column names of a week's result in CSV order (JSONB objects do not keep key order), so exports
-- can restore the order AMC returned.
ALTER TABLE report_data_weeks ADD COLUMN result_columns JSONB;
