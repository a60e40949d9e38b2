//! JSON Schemas derived from the GraphQL schema: what a document's variables accept and what
//! its selection returns. REST bodies, query parameters and responses in the OpenAPI document
//! come from here, so they cannot drift from GraphQL, whose types are the Rust types.

use std::collections::HashMap;

use async_graphql::Positioned;
use async_graphql::parser::types::{
    BaseType, DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet, Type,
};
use serde_json::{Map, Value, json};

use crate::api::graphql::OrgataSchema;

const INTROSPECTION: &str = r#"
query {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types {
      kind name description
      enumValues { name }
      fields { name description type { ...TypeRef } }
      inputFields { name description type { ...TypeRef } defaultValue }
    }
  }
}
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }
}
"#;

/// The GraphQL type system, read once by introspection.
#[derive(Debug, Clone)]
pub struct Shapes {
    types: HashMap<String, Value>,
    roots: HashMap<&'static str, String>,
}

/// A parsed operation document and the shapes of its variables and result.
#[derive(Debug, Clone)]
pub struct OperationShape {
    pub document: ExecutableDocument,
    pub kind: OperationType,
    /// Variable name → (JSON Schema, required).
    pub variables: HashMap<String, (Value, bool)>,
    /// JSON Schema of `data`.
    pub result: Value,
}

impl Shapes {
    /// Introspects `schema`; introspection is pure, so this never waits on I/O.
    pub fn new(schema: &OrgataSchema) -> Result<Shapes, String> {
        let response = futures::executor::block_on(schema.execute(INTROSPECTION));
        if !response.errors.is_empty() {
            return Err(format!("introspection failed: {:?}", response.errors));
        }
        let data = response.data.into_json().map_err(|error| error.to_string())?;
        let mut types = HashMap::new();
        for kind in data["__schema"]["types"].as_array().into_iter().flatten() {
            if let Some(name) = kind["name"].as_str() {
                types.insert(name.to_owned(), kind.clone());
            }
        }
        let mut roots = HashMap::new();
        for (key, root) in [("query", "queryType"), ("mutation", "mutationType"), ("subscription", "subscriptionType")]
        {
            if let Some(name) = data["__schema"][root]["name"].as_str() {
                roots.insert(key, name.to_owned());
            }
        }
        Ok(Shapes { types, roots })
    }

    /// Parses `document` and derives the shapes of its single operation.
    pub fn operation(&self, document: &str) -> Result<OperationShape, String> {
        let parsed = async_graphql::parser::parse_query(document).map_err(|error| error.to_string())?;
        let operation = match &parsed.operations {
            DocumentOperations::Single(operation) => operation.node.clone(),
            DocumentOperations::Multiple(operations) if operations.len() == 1 => {
                operations.values().next().map(|operation| operation.node.clone()).ok_or("no operation")?
            }
            DocumentOperations::Multiple(_) => {
                return Err("a catalogue document holds exactly one operation".to_owned());
            }
        };
        let root = match operation.ty {
            OperationType::Query => "query",
            OperationType::Mutation => "mutation",
            OperationType::Subscription => "subscription",
        };
        let root = self.roots.get(root).ok_or_else(|| format!("the schema has no {root} type"))?;
        let mut variables = HashMap::new();
        for variable in &operation.variable_definitions {
            let definition = &variable.node;
            let required = !definition.var_type.node.nullable && definition.default_value.is_none();
            let mut schema = self.input_type(&definition.var_type.node, 0);
            if let (Some(default), Value::Object(object)) = (&definition.default_value, &mut schema)
                && let Ok(default) = default.node.clone().into_json()
            {
                object.insert("default".to_owned(), default);
            }
            variables.insert(definition.name.node.to_string(), (schema, required));
        }
        let result = self.selection(root, &operation.selection_set.node, &parsed, 0);
        Ok(OperationShape { kind: operation.ty, variables, result, document: parsed })
    }

    fn named(&self, name: &str, input: bool, depth: usize) -> Value {
        match name {
            "String" | "ID" => return json!({"type": "string"}),
            "Int" => return json!({"type": "integer"}),
            "Float" => return json!({"type": "number"}),
            "Boolean" => return json!({"type": "boolean"}),
            "JSON" => return json!({}),
            "DateTime" => return json!({"type": "string", "format": "date-time"}),
            _ => {}
        }
        let Some(kind) = self.types.get(name) else { return json!({}) };
        match kind["kind"].as_str() {
            Some("ENUM") => {
                let values: Vec<Value> =
                    kind["enumValues"].as_array().into_iter().flatten().map(|value| value["name"].clone()).collect();
                json!({"type": "string", "enum": values})
            }
            Some("INPUT_OBJECT") if input && depth < 8 => {
                let mut properties = Map::new();
                let mut required = Vec::new();
                for field in kind["inputFields"].as_array().into_iter().flatten() {
                    let Some(field_name) = field["name"].as_str() else { continue };
                    let (schema, non_null) = self.type_ref(&field["type"], true, depth + 1);
                    if non_null && field["defaultValue"].is_null() {
                        required.push(json!(field_name));
                    }
                    properties.insert(field_name.to_owned(), describe(schema, &field["description"]));
                }
                json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
            }
            _ => json!({}),
        }
    }

    /// The schema of an introspected type reference, and whether it is non-null.
    fn type_ref(&self, reference: &Value, input: bool, depth: usize) -> (Value, bool) {
        match reference["kind"].as_str() {
            Some("NON_NULL") => (self.type_ref(&reference["ofType"], input, depth).0, true),
            Some("LIST") => {
                let (items, non_null) = self.type_ref(&reference["ofType"], input, depth);
                (json!({"type": "array", "items": nullable(items, non_null)}), false)
            }
            _ => (self.named(reference["name"].as_str().unwrap_or_default(), input, depth), false),
        }
    }

    fn input_type(&self, variable_type: &Type, depth: usize) -> Value {
        let schema = match &variable_type.base {
            BaseType::Named(name) => self.named(name, true, depth),
            BaseType::List(item) => json!({"type": "array", "items": self.input_type(item, depth)}),
        };
        nullable(schema, !variable_type.nullable)
    }

    fn field(&self, type_name: &str, field: &str) -> Option<&Value> {
        self.types.get(type_name)?["fields"].as_array()?.iter().find(|candidate| candidate["name"] == field)
    }

    fn selection(
        &self,
        type_name: &str,
        selection_set: &SelectionSet,
        document: &ExecutableDocument,
        depth: usize,
    ) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        self.collect(type_name, selection_set, document, depth, &mut properties, &mut required);
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }

    fn collect(
        &self,
        type_name: &str,
        selection_set: &SelectionSet,
        document: &ExecutableDocument,
        depth: usize,
        properties: &mut Map<String, Value>,
        required: &mut Vec<Value>,
    ) {
        for selection in &selection_set.items {
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let key = field.alias.as_ref().unwrap_or(&field.name).node.to_string();
                    if field.name.node.as_str() == "__typename" {
                        properties.insert(key.clone(), json!({"type": "string"}));
                        required.push(json!(key));
                        continue;
                    }
                    let Some(meta) = self.field(type_name, field.name.node.as_str()) else { continue };
                    let (schema, non_null) = self.output(&meta["type"], &field.selection_set, document, depth + 1);
                    if non_null {
                        required.push(json!(key));
                    }
                    properties.insert(key, describe(nullable(schema, non_null), &meta["description"]));
                }
                Selection::InlineFragment(fragment) => {
                    self.collect(type_name, &fragment.node.selection_set.node, document, depth, properties, required)
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                        self.collect(
                            type_name,
                            &fragment.node.selection_set.node,
                            document,
                            depth,
                            properties,
                            required,
                        )
                    }
                }
            }
        }
    }

    fn output(
        &self,
        reference: &Value,
        selection_set: &Positioned<SelectionSet>,
        document: &ExecutableDocument,
        depth: usize,
    ) -> (Value, bool) {
        match reference["kind"].as_str() {
            Some("NON_NULL") => (self.output(&reference["ofType"], selection_set, document, depth).0, true),
            Some("LIST") => {
                let (items, non_null) = self.output(&reference["ofType"], selection_set, document, depth);
                (json!({"type": "array", "items": nullable(items, non_null)}), false)
            }
            Some("OBJECT" | "INTERFACE" | "UNION") if depth < 16 => {
                let name = reference["name"].as_str().unwrap_or_default();
                (self.selection(name, &selection_set.node, document, depth), false)
            }
            _ => (self.named(reference["name"].as_str().unwrap_or_default(), false, depth), false),
        }
    }
}

/// `schema`, or null.
fn nullable(schema: Value, non_null: bool) -> Value {
    if non_null || schema == json!({}) { schema } else { json!({"anyOf": [schema, {"type": "null"}]}) }
}

fn describe(mut schema: Value, description: &Value) -> Value {
    if let (Value::Object(object), Some(text)) = (&mut schema, description.as_str()) {
        object.insert("description".to_owned(), json!(text));
    }
    schema
}

/// The schema of an arguments object (a REST body, an MCP tool's arguments): each `Body`
/// bind's variable schema at its JSON pointer. None if no bind reads the object.
pub fn arguments_schema(binds: &[crate::api::catalog::Bind], shape: &OperationShape) -> Option<Value> {
    use crate::api::catalog::Source;
    let mut root = json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false});
    let mut any = false;
    for bind in binds {
        let Source::Body(pointer) = bind.from else { continue };
        let Some((variable_schema, required)) = shape.variables.get(bind.variable) else { continue };
        any = true;
        let segments: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        let mut node = &mut root;
        for (index, segment) in segments.iter().enumerate() {
            let last = index + 1 == segments.len();
            if *required
                && let Some(list) = node["required"].as_array_mut()
                && !list.contains(&json!(segment))
            {
                list.push(json!(segment));
            }
            if last {
                node["properties"][*segment] = variable_schema.clone();
            } else if node["properties"].get(*segment).is_none() {
                node["properties"][*segment] =
                    json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false});
            }
            node = &mut node["properties"][*segment];
        }
    }
    any.then_some(root)
}

/// The part of a result schema that a JSON pointer into the result selects.
pub fn schema_at(result: &Value, pointer: &str) -> Value {
    let mut schema = result;
    for segment in pointer.trim_start_matches('/').split('/').filter(|segment| !segment.is_empty()) {
        schema = &non_null(schema)["properties"][segment];
    }
    schema.clone()
}

/// The non-null branch of `anyOf: [X, null]`, or the schema itself.
pub fn non_null(schema: &Value) -> &Value {
    schema["anyOf"]
        .as_array()
        .and_then(|options| options.iter().find(|option| option["type"] != "null"))
        .unwrap_or(schema)
}
