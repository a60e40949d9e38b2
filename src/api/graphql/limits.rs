//! Limits on what one GraphQL document may ask. Depth and complexity are async-graphql's own
//! (set in [`super::build`]); aliases are counted here, since many aliases of one expensive
//! field multiply its cost without deepening the query.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

/// The most aliases one document may use.
pub const MAX_ALIASES: usize = 30;

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
        let document = next.run(context, query, variables).await?;
        let mut aliases = 0;
        for (_, operation) in document.operations.iter() {
            aliases += count(&operation.node.selection_set.node);
        }
        for fragment in document.fragments.values() {
            aliases += count(&fragment.node.selection_set.node);
        }
        if aliases > MAX_ALIASES {
            let mut error =
                ServerError::new(format!("the query uses {aliases} aliases; at most {MAX_ALIASES} are allowed"), None);
            let mut extensions = async_graphql::ErrorExtensionValues::default();
            extensions.set("code", "BAD_INPUT");
            error.extensions = Some(extensions);
            return Err(error);
        }
        Ok(document)
    }
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
