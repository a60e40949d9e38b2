//! DataLoaders: lists of executions ask for their interventions in one query, not one each.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;

use crate::api::graphql::to_graphql;
use crate::api::graphql::types::Intervention;
use crate::engine::{Engine, ExecutionId, Principal};

/// One per request: it reads as the request's caller.
pub struct InterventionsByExecution {
    pub engine: Engine,
    pub principal: Principal,
}

impl Loader<ExecutionId> for InterventionsByExecution {
    type Value = Vec<Intervention>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ExecutionId]) -> Result<HashMap<ExecutionId, Self::Value>, Self::Error> {
        let found = self.engine.interventions_of(&self.principal, keys).await.map_err(to_graphql)?;
        Ok(found
            .into_iter()
            .map(|(execution, interventions)| (execution, interventions.into_iter().map(Intervention::from).collect()))
            .collect())
    }
}
