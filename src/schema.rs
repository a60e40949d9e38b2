//! JSON Schema (draft 2020-12 by default) compilation and validation, shared by the package
//! validator, the engine and the protocol edges: every schema in Orgata is compiled here, so
//! they all agree. `format` is asserted (`email`, `date`, `uri`, … reject malformed strings;
//! the form fields advertise them, so accepting a bad value would break that promise), and
//! unknown formats are ignored as the specification allows. Remote `$ref`s are never fetched:
//! `jsonschema` is built without its resolving features, so a package cannot make the server
//! reach the network.

use serde::Serialize;
use serde_json::Value;

/// A compiled JSON Schema.
pub type Validator = jsonschema::Validator;

/// One place where a value breaks its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// Compiles a schema, checking it against its meta-schema first; every problem is in the message.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    compile_all(schema).map_err(|errors| {
        errors
            .iter()
            .map(|error| {
                if error.pointer.is_empty() {
                    error.message.clone()
                } else {
                    format!("{} (at {} in the schema)", error.message, error.pointer)
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Compiles a schema, or lists every place where it breaks its meta-schema (pointers into the
/// schema), so that a package author sees all of them in one run.
pub fn compile_all(schema: &Value) -> Result<Validator, Vec<FieldError>> {
    let error = match jsonschema::options().should_validate_formats(true).build(schema) {
        Ok(validator) => return Ok(validator),
        Err(error) => error,
    };
    // The builder stops at the first meta-schema error; the meta-schema's own validator
    // lists them all. Anything else (an unresolvable `$ref`) is the builder's one error.
    let all: Vec<FieldError> = match jsonschema::meta::validator_for(schema) {
        Ok(meta) => meta.iter_errors(schema).map(|error| field_error(&error)).collect(),
        Err(_) => Vec::new(),
    };
    if all.is_empty() { Err(vec![field_error(&error)]) } else { Err(all) }
}

/// Every place where `instance` breaks the schema, in document order.
pub fn check(validator: &Validator, instance: &Value) -> Vec<FieldError> {
    validator.iter_errors(instance).map(|error| field_error(&error)).collect()
}

/// One error, pointing at the value it is about. A missing required property points at where
/// that property belongs (`/address/city`), not at the object holding it, so a form can mark
/// the field itself.
fn field_error(error: &jsonschema::ValidationError<'_>) -> FieldError {
    let mut pointer = error.instance_path().as_str().to_owned();
    if let jsonschema::error::ValidationErrorKind::Required { property: Value::String(property) } = error.kind() {
        pointer.push('/');
        pointer.push_str(&property.replace('~', "~0").replace('/', "~1"));
    }
    FieldError { pointer, message: error.to_string() }
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
        assert!(pointers.contains(&"/a") && pointers.contains(&"/b") && pointers.contains(&"/c"), "{pointers:?}");
    }

    #[test]
    fn a_missing_property_points_at_itself_escaped() {
        let validator = compile(&json!({
            "type": "object",
            "properties": {"inner": {"type": "object", "required": ["a/b~c"]}},
            "required": ["inner"]
        }))
        .expect("valid schema");
        let errors = check(&validator, &json!({"inner": {}}));
        assert_eq!(errors.iter().map(|error| error.pointer.as_str()).collect::<Vec<_>>(), ["/inner/a~1b~0c"]);
    }

    #[test]
    fn asserts_formats() {
        let validator = compile(&json!({
            "type": "object",
            "properties": {
                "email": {"type": "string", "format": "email"},
                "day": {"type": "string", "format": "date"},
                "other": {"type": "string", "format": "no-such-format"}
            }
        }))
        .expect("valid schema");
        assert!(check(&validator, &json!({"email": "a@example.com", "day": "2026-12-03", "other": "x"})).is_empty());
        let errors = check(&validator, &json!({"email": "not an email", "day": "2026-13-45"}));
        let pointers: Vec<_> = errors.iter().map(|error| error.pointer.as_str()).collect();
        assert_eq!(pointers, ["/email", "/day"], "{errors:?}");
    }

    #[test]
    fn lists_every_meta_schema_error() {
        let errors = compile_all(&json!({
            "type": "object",
            "properties": {"a": {"type": "banana"}, "b": {"minLength": -1}}
        }))
        .expect_err("invalid schema");
        let pointers: Vec<_> = errors.iter().map(|error| error.pointer.as_str()).collect();
        assert!(
            pointers.contains(&"/properties/a/type") && pointers.contains(&"/properties/b/minLength"),
            "{errors:?}"
        );
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
