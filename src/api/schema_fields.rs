//! Forms as data: a JSON Schema flattened into `FieldDescriptor`s, so that a frontend can render
//! a form without interpreting JSON Schema. UI hints come from the schema's annotations:
//! `title`, `description`, `default`, `format`, and Orgata's `x-orgata-widget`,
//! `x-orgata-order` and `x-orgata-label`.

use async_graphql::SimpleObject;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

/// One field of a form.
#[derive(Debug, Clone, PartialEq, SimpleObject, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescriptor {
    /// The property name.
    pub name: String,
    /// JSON pointer of the field in the value (`/address/city` for nested objects).
    pub path: String,
    /// JSON type: string, number, integer, boolean, object, array (or `any`).
    #[graphql(name = "type")]
    #[serde(rename = "type")]
    pub field_type: String,
    pub required: bool,
    /// The allowed values, if the schema lists them.
    #[graphql(name = "enum")]
    #[serde(rename = "enum")]
    pub enum_values: Option<Vec<Value>>,
    /// A human label: `x-orgata-label`, else `title`, else the name.
    pub label: String,
    pub description: Option<String>,
    /// How to render it: `x-orgata-widget`, else derived (select, checkbox, number, date,
    /// email, textarea for long text, text).
    pub widget: String,
    pub default: Option<Value>,
    pub format: Option<String>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    /// Display order: `x-orgata-order`, else the order of the schema's properties.
    pub order: i32,
}

/// The fields of an object schema, nested objects flattened, in display order.
pub fn fields_of(schema: &Value) -> Vec<FieldDescriptor> {
    let mut fields = Vec::new();
    collect(schema, "", &mut fields, 0);
    fields.sort_by_key(|field| field.order);
    fields
}

fn collect(schema: &Value, prefix: &str, fields: &mut Vec<FieldDescriptor>, depth: usize) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (position, (name, property)) in properties.iter().enumerate() {
        let path = format!("{prefix}/{}", name.replace('~', "~0").replace('/', "~1"));
        let field_type = type_of(property);
        if field_type == "object" && property.get("properties").is_some() && depth < 8 {
            collect(property, &path, fields, depth + 1);
            continue;
        }
        let text = |key: &str| property.get(key).and_then(Value::as_str).map(str::to_owned);
        let enum_values = property.get("enum").and_then(Value::as_array).cloned();
        let format = text("format");
        let widget = text("x-orgata-widget").unwrap_or_else(|| {
            match (field_type.as_str(), &enum_values, format.as_deref()) {
                (_, Some(_), _) => "select",
                ("boolean", _, _) => "checkbox",
                ("number" | "integer", _, _) => "number",
                (_, _, Some("date")) => "date",
                (_, _, Some("date-time")) => "datetime",
                (_, _, Some("email")) => "email",
                ("string", _, _)
                    if property.get("maxLength").and_then(Value::as_u64).is_none_or(|length| length > 200)
                        && property.get("minLength").and_then(Value::as_u64).is_some_and(|length| length > 20) =>
                {
                    "textarea"
                }
                ("object" | "array", _, _) => "json",
                _ => "text",
            }
            .to_owned()
        });
        fields.push(FieldDescriptor {
            name: name.clone(),
            required: required.contains(&name.as_str()),
            label: text("x-orgata-label").or_else(|| text("title")).unwrap_or_else(|| name.clone()),
            description: text("description"),
            widget,
            default: property.get("default").cloned(),
            format,
            minimum: property.get("minimum").and_then(Value::as_f64),
            maximum: property.get("maximum").and_then(Value::as_f64),
            order: property
                .get("x-orgata-order")
                .and_then(Value::as_i64)
                .map_or(((depth as i32) << 16) + position as i32, |order| order as i32),
            enum_values,
            field_type,
            path,
        });
    }
}

fn type_of(property: &Value) -> String {
    match property.get("type") {
        Some(Value::String(name)) => name.clone(),
        Some(Value::Array(names)) => {
            names.iter().filter_map(Value::as_str).find(|name| *name != "null").unwrap_or("any").to_owned()
        }
        _ => match property.get("enum").and_then(Value::as_array).and_then(|values| values.first()) {
            Some(Value::String(_)) => "string".to_owned(),
            Some(Value::Number(_)) => "number".to_owned(),
            Some(Value::Bool(_)) => "boolean".to_owned(),
            _ => "any".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattens_a_form_with_hints() {
        let fields = fields_of(&json!({
            "type": "object",
            "required": ["jelly_flavor"],
            "properties": {
                "jelly_flavor": {"enum": ["grape", "strawberry"], "title": "Jelly flavour"},
                "notes": {"type": "string", "x-orgata-widget": "textarea", "x-orgata-order": -1},
                "address": {"type": "object", "properties": {"city": {"type": "string"}}},
                "rush": {"type": "boolean", "default": false}
            }
        }));
        let names: Vec<&str> = fields.iter().map(|field| field.name.as_str()).collect();
        assert_eq!(names, ["notes", "jelly_flavor", "rush", "city"]);
        assert_eq!(fields[1].widget, "select");
        assert_eq!(fields[1].label, "Jelly flavour");
        assert!(fields[1].required);
        assert_eq!(fields[1].field_type, "string");
        assert_eq!(fields[0].widget, "textarea");
        assert_eq!(fields[2].widget, "checkbox");
        assert_eq!(fields[3].path, "/address/city");
    }
}
