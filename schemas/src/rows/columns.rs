//! Rows appended straight into Arrow column builders, one builder per column.
//!
//! Each row type lists which of its fields fills a column of which kind
//! ([`table_columns!`]); a row's values are copied into the builders as it is added, so a
//! decoder's rows can borrow from the input record and never be copied into owned strings
//! first. (Rows used to be kept until a batch was cut and then turned into columns one at a
//! time: every text was copied twice, and each cost an allocation.)
//!
//! A builder that finishes a column starts the next one a quarter larger than the finished
//! one, so a table's second batch onwards fills buffers sized once instead of doubling them.
//! (Sized exactly, a batch a little larger than the one before doubled its buffers of
//! megabytes: a copy into fresh memory, faulted in page by page. Room never written to is
//! never faulted in.) A table's first batch has no batch before it: once its first rows
//! are in, [`TableColumns::make_room`] moves them into builders sized by what they took.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, AsArray, BooleanBuilder, Int32Builder, Int64Builder, ListBuilder,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field};

/// Room for the next batch of a column whose last batch took `len`.
pub(crate) fn with_room(len: usize) -> usize {
    len + len / 4
}

/// A first batch's size as its first rows predict it: each buffer gets what the `sample`
/// rows took, scaled to `rows`, plus an eighth in case the rows to come are longer.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    /// Rows in so far.
    pub(crate) sample: usize,
    /// Rows the batch is expected to reach.
    pub(crate) rows: usize,
}

impl Expected {
    /// Room for the batch of something the sample took `len` of.
    fn room(self, len: usize) -> usize {
        let scaled = len as u128 * self.rows as u128 / self.sample.max(1) as u128;
        let scaled = usize::try_from(scaled).unwrap_or(usize::MAX);
        scaled.saturating_add(scaled / 8)
    }
}

/// A text column.
// Arrow's builder: one of our own (presence bits by the word, offsets left unchecked)
// took as many instructions per text (callgrind, one worker, 50k events).
#[derive(Debug, Default)]
pub(crate) struct TextColumn {
    values: StringBuilder,
}

impl TextColumn {
    // Inlined into each row's append: called, it cost 0.4 % more of ingest's instructions.
    #[inline(always)]
    pub(crate) fn push(&mut self, value: Option<&str>) {
        self.values.append_option(value);
    }

    pub(crate) fn text_bytes(&self) -> usize {
        self.values.values_slice().len()
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        let next = StringBuilder::with_capacity(
            with_room(self.values.len()),
            with_room(self.values.values_slice().len()),
        );
        Arc::new(std::mem::replace(&mut self.values, next).finish())
    }

    pub(crate) fn make_room(&mut self, expected: Expected) {
        let mut next = StringBuilder::with_capacity(
            expected.room(self.values.len()),
            expected.room(self.values.values_slice().len()),
        );
        // Copied, not moved: texts that fit the old builder's offsets fit an empty one's,
        // but were that ever not so, the column would stay whole and go on growing.
        if next.append_array(&self.values.finish_cloned()).is_ok() {
            self.values = next;
        }
    }
}

/// A list-of-text column: never null, empty when the row has none.
#[derive(Debug)]
pub(crate) struct TextListColumn {
    lists: ListBuilder<StringBuilder>,
}

impl Default for TextListColumn {
    fn default() -> Self {
        TextListColumn {
            lists: text_lists(0, 0, 0),
        }
    }
}

fn text_lists(rows: usize, items: usize, bytes: usize) -> ListBuilder<StringBuilder> {
    ListBuilder::with_capacity(StringBuilder::with_capacity(items, bytes), rows)
        .with_field(Arc::new(Field::new("element", DataType::Utf8, true)))
}

impl TextListColumn {
    pub(crate) fn text_bytes(&self) -> usize {
        self.lists.values_ref().values_slice().len()
    }

    pub(crate) fn push<S: AsRef<str>>(&mut self, values: &[S]) {
        for v in values {
            self.lists.values().append_value(v);
        }
        self.lists.append(true);
    }

    pub(crate) fn finish(&mut self) -> ArrayRef {
        let items = self.lists.values_ref();
        let next = text_lists(
            with_room(self.lists.len()),
            with_room(items.len()),
            with_room(items.values_slice().len()),
        );
        Arc::new(std::mem::replace(&mut self.lists, next).finish())
    }

    pub(crate) fn make_room(&mut self, expected: Expected) {
        let items = self.lists.values_ref();
        let next = text_lists(
            expected.room(self.lists.len()),
            expected.room(items.len()),
            expected.room(items.values_slice().len()),
        );
        let sample = std::mem::replace(&mut self.lists, next).finish();
        for list in sample.iter().flatten() {
            for text in list.as_string::<i32>() {
                self.lists.values().append_option(text);
            }
            self.lists.append(true);
        }
    }
}

/// Columns of fixed-width values: numbers, flags and times.
macro_rules! fixed_width_columns {
    ($($(#[$doc:meta])* $name:ident($builder:ident, $value:ty) $(with $tz:literal)?;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub(crate) struct $name($builder);

        impl $name {
            pub(crate) fn push(&mut self, value: Option<$value>) {
                self.0.append_option(value);
            }

            pub(crate) fn text_bytes(&self) -> usize {
                0
            }

            pub(crate) fn finish(&mut self) -> ArrayRef {
                let next = $builder::with_capacity(with_room(self.0.len()));
                let array = std::mem::replace(&mut self.0, next).finish();
                $(let array = array.with_timezone($tz);)?
                Arc::new(array)
            }

            pub(crate) fn make_room(&mut self, expected: Expected) {
                let next = $builder::with_capacity(expected.room(self.0.len()));
                let sample = std::mem::replace(&mut self.0, next).finish();
                self.0.append_array(&sample);
            }
        }
    )*};
}

fixed_width_columns! {
    Int32Column(Int32Builder, i32);
    Int64Column(Int64Builder, i64);
    BoolColumn(BooleanBuilder, bool);
    /// µs since the epoch, UTC.
    TimeColumn(TimestampMicrosecondBuilder, i64) with "UTC";
}

/// What a row field holds, as its column builder takes it: text fields as `Option<&str>`,
/// lists as slices, numbers and flags as options, required ones always `Some`.
pub(crate) trait Cell {
    type Out<'a>
    where
        Self: 'a;
    fn cell(&self) -> Self::Out<'_>;
}

impl Cell for String {
    type Out<'a> = Option<&'a str>;
    fn cell(&self) -> Option<&str> {
        Some(self)
    }
}

impl Cell for Cow<'_, str> {
    type Out<'a>
        = Option<&'a str>
    where
        Self: 'a;
    fn cell(&self) -> Option<&str> {
        Some(self)
    }
}

impl Cell for Option<String> {
    type Out<'a> = Option<&'a str>;
    fn cell(&self) -> Option<&str> {
        self.as_deref()
    }
}

impl Cell for Option<Cow<'_, str>> {
    type Out<'a>
        = Option<&'a str>
    where
        Self: 'a;
    fn cell(&self) -> Option<&str> {
        self.as_deref()
    }
}

impl<T: AsRef<str>> Cell for Vec<T> {
    type Out<'a>
        = &'a [T]
    where
        Self: 'a;
    fn cell(&self) -> &[T] {
        self
    }
}

impl Cell for i64 {
    type Out<'a> = Option<i64>;
    fn cell(&self) -> Option<i64> {
        Some(*self)
    }
}

macro_rules! copied_cells {
    ($($t:ty),*) => {$(
        impl Cell for Option<$t> {
            type Out<'a> = Option<$t>;
            fn cell(&self) -> Option<$t> {
                *self
            }
        }
    )*};
}
copied_cells!(i64, i32, bool);

/// Where a table's rows are appended, column by column.
pub trait TableColumns: Default {
    const TABLE: crate::table::Table;
    /// The column of that name as built so far, leaving it empty (`None` for a name the
    /// table's rows have no field for).
    fn finish(&mut self, name: &str) -> Option<ArrayRef>;
    /// Moves the rows in so far into builders with room for the batch `expected` says.
    fn make_room(&mut self, expected: Expected);
    /// The most text any one column holds.
    fn largest_text(&self) -> usize;
}

/// Columns that take rows of type `R`.
pub trait AppendRow<R>: TableColumns {
    fn append(&mut self, row: &R);
}

/// The columns of a row type and the code that appends its rows: one builder per listed
/// field, named like it, of the listed kind.
///
/// ```text
/// table_columns!(FlowColumns of Table::NetworkFlows, from FlowRecord {
///     TimeColumn: [event_time], TextColumn: [namespace, pod],
/// });
/// ```
macro_rules! table_columns {
    ($(#[$doc:meta])* $columns:ident of $table:expr, from $row:ty {
        $($kind:ident: [$($field:ident),* $(,)?]),* $(,)?
    }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $columns {
            $($($field: $crate::rows::columns::$kind,)*)*
        }

        impl $crate::rows::columns::TableColumns for $columns {
            const TABLE: $crate::table::Table = $table;
            fn finish(&mut self, name: &str) -> Option<arrow::array::ArrayRef> {
                match name {
                    $($(stringify!($field) => Some(self.$field.finish()),)*)*
                    _ => None,
                }
            }
            fn make_room(&mut self, expected: $crate::rows::columns::Expected) {
                $($(self.$field.make_room(expected);)*)*
            }
            fn largest_text(&self) -> usize {
                0 $($(.max(self.$field.text_bytes()))*)*
            }
        }

        impl $crate::rows::columns::AppendRow<$row> for $columns {
            fn append(&mut self, row: &$row) {
                $($(self.$field.push($crate::rows::columns::Cell::cell(&row.$field));)*)*
            }
        }

        impl $crate::rows::EventRow for $row {
            type Columns = $columns;
        }
    };
}
pub(crate) use table_columns;

#[cfg(test)]
mod tests {
    use arrow::array::Array;

    use super::*;

    #[test]
    fn a_first_batch_moved_into_room_for_the_whole_batch_fills_it_in_place() {
        let mut text = TextColumn::default();
        let mut lists = TextListColumn::default();
        let mut times = TimeColumn::default();
        let value = |i: usize| (!i.is_multiple_of(4)).then(|| format!("pod-{i:04}"));
        let list = |i: usize| vec![format!("group-{i:04}"); i % 3];
        for i in 0..100 {
            text.push(value(i).as_deref());
            lists.push(&list(i));
            times.push((!i.is_multiple_of(5)).then_some(i as i64));
        }
        let expected = Expected {
            sample: 100,
            rows: 1000,
        };
        text.make_room(expected);
        lists.make_room(expected);
        times.make_room(expected);
        let start = text.values.values_slice().as_ptr();
        for i in 100..1000 {
            text.push(value(i).as_deref());
            lists.push(&list(i));
            times.push((!i.is_multiple_of(5)).then_some(i as i64));
        }
        assert_eq!(text.values.values_slice().as_ptr(), start);
        assert!(times.0.capacity() >= 1000);
        let text = text.finish();
        let text = text.as_string::<i32>();
        let lists = lists.finish();
        let lists = lists.as_list::<i32>();
        let times = times.finish();
        let times = times.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        for i in 0..1000 {
            assert_eq!(text.is_valid(i).then(|| text.value(i)), value(i).as_deref());
            let items = lists.value(i);
            let items: Vec<&str> = items.as_string::<i32>().iter().flatten().collect();
            assert_eq!(items, list(i));
            assert_eq!(
                times.is_valid(i).then(|| times.value(i)),
                (!i.is_multiple_of(5)).then_some(i as i64)
            );
        }
    }

    #[test]
    fn a_batch_a_little_larger_than_the_last_fills_the_buffers_it_was_given() {
        let text = "system:serviceaccount:kube-system:replicaset-controller";
        let mut column = TextColumn::default();
        let mut times = TimeColumn::default();
        for i in 0..1000 {
            column.push(Some(text));
            times.push(Some(i));
        }
        assert_eq!(column.finish().len(), 1000);
        assert_eq!(times.finish().len(), 1000);
        // The next batch is 10 % larger: its text is written where the first value went.
        column.push(Some(text));
        let start = column.values.values_slice().as_ptr();
        for _ in 1..1100 {
            column.push(Some(text));
        }
        assert_eq!(column.values.values_slice().as_ptr(), start);
        assert!(times.0.capacity() >= 1100);
    }
}
