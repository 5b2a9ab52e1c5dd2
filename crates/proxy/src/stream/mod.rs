//! The response body on its way to the client: SSE event framing and the tee that folds what
//! passes into the record.

pub mod reshape;
pub mod sse;
pub(crate) mod tee;
