//! Limits on what one GraphQL document may ask. Depth and complexity are async-graphql's own
//! (set in [`super::build`]); aliases are counted here, since many aliases of one expensive
//! field multiply its cost without deepening the query. Before a document is parsed, its
//! nesting is measured from its text (the parser recurses once per bracket, so a document of
//! 100,000 `{` would otherwise overflow the stack), and its variables' nesting is bounded
//! (the engine keeps values a few levels down in JSON it reads back). Fragment spreads are
//! expanded by counting, memoised per fragment, so that fragments spreading fragments cannot
//! make validation exponential.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// The most aliases one document may use.
pub const MAX_ALIASES: usize = 30;
/// The deepest nesting of brackets (`{`, `[`, `(`) in a document's text.
pub const MAX_DOCUMENT_NESTING: usize = 100;
/// The deepest nesting of arrays and objects in variables.
pub const MAX_VALUE_DEPTH: usize = 64;
/// The most fields a document may select once its fragment spreads are expanded.
pub const MAX_EXPANDED_FIELDS: usize = 10_000;
/// The most subscriptions one WebSocket connection may hold at once (GraphQL and REST).
pub const MAX_SUBSCRIPTIONS: usize = 256;

/// Why a document is refused before it is parsed, or `Ok`.
pub fn check_text(query: &str) -> Result<(), String> {
    let bytes = query.as_bytes();
    let (mut depth, mut deepest, mut index) = (0usize, 0usize, 0usize);
    while index < bytes.len() {
        match bytes[index] {
            b'#' => {
                while index < bytes.len() && bytes[index] != b'\n' && bytes[index] != b'\r' {
                    index += 1;
                }
            }
            b'"' if bytes[index..].starts_with(b"\"\"\"") => {
                index += 3;
                while index < bytes.len() && !bytes[index..].starts_with(b"\"\"\"") {
                    index += if bytes[index..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                index += 2;
            }
            b'"' => {
                index += 1;
                while index < bytes.len() && bytes[index] != b'"' && bytes[index] != b'\n' {
                    index += if bytes[index] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' | b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        index += 1;
    }
    if deepest > MAX_DOCUMENT_NESTING {
        return Err(format!("the document nests {deepest} levels deep; at most {MAX_DOCUMENT_NESTING} are allowed"));
    }
    Ok(())
}

/// Why variables are refused, or `Ok`.
pub fn check_variables(variables: &Variables) -> Result<(), String> {
    fn depth(value: &async_graphql::Value, limit: usize) -> bool {
        match value {
            async_graphql::Value::List(items) => limit > 0 && items.iter().all(|item| depth(item, limit - 1)),
            async_graphql::Value::Object(fields) => limit > 0 && fields.values().all(|field| depth(field, limit - 1)),
            _ => true,
        }
    }
    // Variables are an object themselves: its fields start one level down.
    if variables.iter().all(|(_, value)| depth(value, MAX_VALUE_DEPTH)) {
        Ok(())
    } else {
        Err(format!("a variable nests deeper than {MAX_VALUE_DEPTH} levels"))
    }
}

/// A GraphQL error with `extensions.code` BAD_INPUT.
pub fn bad_input(message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", "BAD_INPUT");
    error.extensions = Some(extensions);
    error
}

pub struct AliasLimit;

impl ExtensionFactory for AliasLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(AliasLimit)
    }
}

#[async_trait::async_trait]
impl Extension for AliasLimit {
    async fn parse_query(
        &self,
        context: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        check_text(query).map_err(bad_input)?;
        check_variables(variables).map_err(bad_input)?;
        let document = next.run(context, query, variables).await?;
        let mut aliases = 0;
        for (_, operation) in document.operations.iter() {
            aliases += count(&operation.node.selection_set.node);
        }
        for fragment in document.fragments.values() {
            aliases += count(&fragment.node.selection_set.node);
        }
        if aliases > MAX_ALIASES {
            return Err(bad_input(format!("the query uses {aliases} aliases; at most {MAX_ALIASES} are allowed")));
        }
        let mut sizes = HashMap::new();
        for (_, operation) in document.operations.iter() {
            let fields = expanded(&operation.node.selection_set.node, &document, &mut sizes);
            if fields > MAX_EXPANDED_FIELDS {
                return Err(bad_input(format!(
                    "the query selects {fields} fields once its fragments are expanded; at most {MAX_EXPANDED_FIELDS} are allowed"
                )));
            }
        }
        Ok(document)
    }
}

/// How many fields `selection_set` selects with every fragment spread expanded, saturating;
/// `sizes` memoises each fragment (a fragment being measured counts as empty, so cycles, which
/// validation refuses anyway, end).
fn expanded<'a>(
    selection_set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    sizes: &mut HashMap<&'a str, usize>,
) -> usize {
    selection_set.items.iter().fold(0usize, |total, selection| {
        let size = match &selection.node {
            Selection::Field(field) => 1usize.saturating_add(expanded(&field.node.selection_set.node, document, sizes)),
            Selection::InlineFragment(fragment) => expanded(&fragment.node.selection_set.node, document, sizes),
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                match (sizes.get(name), document.fragments.get(&spread.node.fragment_name.node)) {
                    (Some(size), _) => *size,
                    (None, Some(fragment)) => {
                        sizes.insert(name, 0);
                        let size = expanded(&fragment.node.selection_set.node, document, sizes);
                        sizes.insert(name, size);
                        size
                    }
                    (None, None) => 0,
                }
            }
        };
        total.saturating_add(size)
    })
}

fn count(selection_set: &SelectionSet) -> usize {
    selection_set
        .items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => usize::from(field.node.alias.is_some()) + count(&field.node.selection_set.node),
            Selection::InlineFragment(fragment) => count(&fragment.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}
