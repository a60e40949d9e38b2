//! JSON Schema (draft 2020-12 by default) compilation and validation, shared by the package
//! validator and the engine. Remote `$ref`s are never fetched: `jsonschema` is built without
//! its resolving features, so a package cannot make the server reach the network.

use serde::Serialize;
use serde_json::Value;

/// A compiled JSON Schema.
pub type Validator = jsonschema::Validator;

/// One place where a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON pointer to the offending value (`""` for the whole value).
    pub pointer: String,
    /// What was expected there.
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pointer = if self.pointer.is_empty() { "/" } else { &self.pointer };
        write!(formatter, "{pointer}: {}", self.message)
    }
}

/// Compiles a schema, checking it against its meta-schema first.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::validator_for(schema).map_err(|error| {
        let at = error.instance_path().as_str();
        if at.is_empty() { error.to_string() } else { format!("{error} (at {at} in the schema)") }
    })
}

/// Every place where `instance` breaks the schema, in document order.
pub fn check(validator: &Validator, instance: &Value) -> Vec<FieldError> {
    validator
        .iter_errors(instance)
        .map(|error| FieldError { pointer: error.instance_path().as_str().to_owned(), message: error.to_string() })
        .collect()
}

/// Checks `instance`, returning every error at once.
pub fn validate(validator: &Validator, instance: &Value) -> Result<(), Vec<FieldError>> {
    let errors = check(validator, instance);
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_every_error_with_its_pointer() {
        let validator = compile(&json!({
            "type": "object",
            "required": ["a"],
            "properties": {"b": {"type": "integer"}, "c": {"enum": ["x"]}}
        }))
        .expect("valid schema");
        let errors = check(&validator, &json!({"b": "no", "c": "y"}));
        let pointers: Vec<_> = errors.iter().map(|error| error.pointer.as_str()).collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(pointers.contains(&"") && pointers.contains(&"/b") && pointers.contains(&"/c"));
    }

    #[test]
    fn rejects_a_schema_that_breaks_its_meta_schema() {
        let error = compile(&json!({"type": "banana"})).expect_err("invalid schema");
        assert!(error.contains("banana"), "{error}");
    }

    #[test]
    fn never_fetches_remote_references() {
        assert!(compile(&json!({"$ref": "http://127.0.0.1:9/schema.json"})).is_err());
    }
}
