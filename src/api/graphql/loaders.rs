//! DataLoaders: lists of executions ask for their interventions in one query, not one each.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::api::graphql::to_graphql;
use crate::api::graphql::types::Intervention;
use crate::engine::{Engine, ExecutionId};

pub struct InterventionsByExecution(pub Engine);

impl Loader<ExecutionId> for InterventionsByExecution {
    type Value = Vec<Intervention>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ExecutionId]) -> Result<HashMap<ExecutionId, Self::Value>, Self::Error> {
        let found = self.0.interventions_of(keys).await.map_err(to_graphql)?;
        Ok(found
            .into_iter()
            .map(|(execution, interventions)| (execution, interventions.into_iter().map(Intervention::from).collect()))
            .collect())
    }
}
