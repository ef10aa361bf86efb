//! Parameter policies (`params`) of models and route targets.

use super::{ConfigError, ParamAction};
use std::collections::BTreeMap;

/// A model's or route target's parameter policy: each action fits its parameter.
pub fn check_params(field: &str, params: &BTreeMap<String, ParamAction>) -> Result<(), ConfigError> {
    for (param, action) in params {
        let error = |message: &str| Err(ConfigError::new(format!("{field}.params.{param}"), message));
        if matches!(param.as_str(), "model" | "messages" | "stream") {
            return error("this parameter is structural and cannot have a policy");
        }
        match action {
            ParamAction::Rename(to) if to.is_empty() || to == param => return error("rename needs a different, non-empty name"),
            ParamAction::Reasoning(_) if param != "reasoning_effort" => {
                return error("`reasoning` is a policy for `reasoning_effort` only");
            }
            ParamAction::JsonSchema(_) if param != "response_format" => {
                return error("`json_schema` is a policy for `response_format` only");
            }
            _ => {}
        }
    }
    Ok(())
}
