//! The data layer of the Conversations API: loading Parquet exports, an immutable
//! roaring-bitmap index over conversations, query parsing and exact query semantics,
//! and a synthetic dataset generator.
//!
//! The HTTP layer only needs [`ConversationIndex`] and [`ConversationQuery`].

mod arena;
mod columns;
pub mod datagen;
mod error;
mod index;
mod load;
mod query;

pub use error::{LoadError, QueryError};
pub use index::{
    CompanySummary, ConversationDetail, ConversationId, ConversationIndex, IndexStats, QueryPage,
    SourceLayout, TagSummary,
};
pub use query::{ConversationQuery, TagMatch, MAX_PER_PAGE, MAX_QUERY_TAGS};
