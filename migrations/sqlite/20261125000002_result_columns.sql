-- Column names of a week's result in CSV order, so exports can restore the order AMC returned.
ALTER TABLE report_data_weeks ADD COLUMN result_columns TEXT;
