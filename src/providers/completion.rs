//! A provider's whole answer, gathered into the gateway's `Completion`, as the client's body.

use super::{ResponseContext, Translated};
use crate::client;
use crate::conversation::answer::Completion;
use crate::error::ApiError;

/// The client's body in its dialect, and the usage the provider reported.
pub(super) fn translated(ctx: &ResponseContext, completion: Completion) -> Result<Translated, ApiError> {
    let usage = completion.usage;
    Ok(Translated { body: Some(client::completion_body(ctx.dialect, completion)?), usage })
}
