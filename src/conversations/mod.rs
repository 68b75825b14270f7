//! The data layer of the Conversations API: loading Parquet exports, an immutable
//! roaring-bitmap index over conversations, query parsing and exact query semantics,
//! and a synthetic dataset generator.
//!
//! The HTTP layer only needs [`ConversationIndex`] and [`ConversationQuery`].
//!
//! Semantics, where more than one reading is reasonable (the one chosen here):
//! - Ids are JSON strings when the id column is a string column (as in the sample)
//!   and JSON numbers only when every id column of the dataset is an integer column.
//!   [`ConversationIndex::conversation`] takes the textual form either way; when ids
//!   repeat, it returns the first in dataset order (a warning is logged at load).
//! - Case-insensitivity is Unicode lower-casing of both sides (`str::to_lowercase`).
//! - In `match=any`, unknown tags are ignored (all unknown → total 0); in
//!   `match=all`, one unknown tag → total 0. `tags=` with only empty items, and
//!   `company=` with only spaces, mean "no filter".
//! - A company's key (as listed by [`ConversationIndex::companies`]) is the leading
//!   word of its name lower-cased, or its id lower-cased if the name has no letters
//!   or digits. Flat tables have no company ids: the name serves as the id.
//! - Tags differing only in case are one tag, shown with the first spelling seen.
//! - Companies are listed in dataset order, tags in order of first appearance.
//! - Dangling references (a conversation's `id_tag` or `id_transcript`, a
//!   transcript's `id_company`, that no row defines) and null keys refuse the load
//!   with the file, column and row; unused columns (`logo`, `length`,
//!   `publish_date`) are not required.
//! - Part files: names starting with `.` or `_` and `.crc` files are skipped, as are
//!   sub-folders; the rest is read in byte-wise file-name order.

mod arena;
mod columns;
pub mod datagen;
mod error;
mod index;
mod load;
mod query;

pub use error::{LoadError, QueryError};
pub use index::analysis::{CompanyFilter, KeywordStats, RowAnalysis, TagStats, TranscriptSummary};
pub use index::{
    CompanySummary, ConversationDetail, ConversationId, ConversationIndex, IndexStats, QueryPage,
    SourceLayout, TagSummary,
};
pub use load::{LoadWatch, Unwatched};
pub use query::{ConversationQuery, TagMatch, DEFAULT_PER_PAGE, MAX_PER_PAGE, MAX_QUERY_TAGS};
