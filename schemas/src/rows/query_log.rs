//! `query_log`: one row per query against the lake (the server's, `sql`'s and the
//! shell's): who looked at the evidence, from where, what they asked and what came back.

use arrow::datatypes::{DataType, Field};

use crate::table::{int, text, PARTITION_COLUMN, TIME_COLUMN};

pub(crate) fn fields() -> Vec<Field> {
    vec![
        // When the query started.
        Field::new(TIME_COLUMN, crate::table::timestamp_type(), false),
        Field::new(PARTITION_COLUMN, DataType::Date32, false),
        Field::new("user_name", DataType::Utf8, false),
        // The client's address (`host:port`), or `local:HOST` for `sql` and the shell.
        Field::new("client", DataType::Utf8, false),
        // `flight-sql`, `sql` or `shell`.
        Field::new("interface", DataType::Utf8, false),
        Field::new("sql", DataType::Utf8, false),
        int("rows"),
        int("bytes"),
        int("duration_ms"),
        // ok, refused, failed, out_of_memory, timeout, cancelled.
        Field::new("outcome", DataType::Utf8, false),
        text("error"),
    ]
}
