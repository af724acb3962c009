"""File bytes → the canonical color frame and its validation report: untrusted files inspected and
read in a limited child (upload_guard, safe_read, readers), cells coerced (coercion, cusips,
excel_errors), rows checked (row_checks, validation), the column configuration (columns)."""
