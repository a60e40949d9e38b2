//! Interventions and steering: reading what waits on people, what each caller may do, and
//! applying a person's action (see [`transition`]).

use std::collections::HashMap;

use crate::engine::access::{self, Access, AnswerRule, Resource, authorize, readable};
use crate::engine::transition::{self, Command};
use crate::engine::types::{
    Action, Environment, Execution, ExecutionId, Intervention, InterventionId, InterventionKind, InterventionStatus,
    Principal,
};
use crate::engine::{Engine, Error, MAX_PAGE, Result, records};
use crate::store;

/// Which interventions to list.
#[derive(Debug, Clone, Default)]
pub struct InterventionFilter {
    pub environment: Option<Environment>,
    pub runtime_id: Option<String>,
    pub execution_id: Option<ExecutionId>,
    pub status: Option<InterventionStatus>,
    pub kind: Option<InterventionKind>,
    /// Only interventions this principal may answer.
    pub answerable_by: Option<Principal>,
}

impl Engine {
    pub async fn intervention(&self, principal: &Principal, id: InterventionId) -> Result<Intervention> {
        let row = store::interventions::find(self.inner.store.connection(), &id.to_string())
            .await?
            .ok_or(Error::InterventionNotFound(id))?;
        let intervention = records::intervention(row)?;
        authorize(principal, intervention.environment, Access::Read, Resource::Intervention)?;
        Ok(intervention)
    }

    /// Interventions, oldest first.
    pub async fn interventions(
        &self,
        principal: &Principal,
        filter: &InterventionFilter,
        limit: u64,
    ) -> Result<Vec<Intervention>> {
        if let Some(environment) = filter.environment {
            authorize(principal, environment, Access::Read, Resource::Intervention)?;
        }
        let rule = filter.answerable_by.as_ref().map(AnswerRule::of);
        let listing = store::interventions::Listing {
            environments: readable(principal, Resource::Intervention, filter.environment),
            runtime_id: filter.runtime_id.as_deref(),
            execution_id: filter.execution_id.map(|id| id.to_string()),
            status: filter.status.map(InterventionStatus::as_str),
            kind: filter.kind.map(InterventionKind::as_str),
            answerable_by: rule.as_ref().map(|rule| {
                let administered = rule.administered.iter().map(|environment| environment.as_str()).collect();
                (administered, rule.roles.as_slice())
            }),
            limit: limit.clamp(1, MAX_PAGE),
        };
        store::interventions::list(self.inner.store.connection(), listing)
            .await?
            .into_iter()
            .map(records::intervention)
            .collect()
    }

    /// Every intervention of each of `executions` that `principal` may read, oldest first, in
    /// one query.
    pub async fn interventions_of(
        &self,
        principal: &Principal,
        executions: &[ExecutionId],
    ) -> Result<HashMap<ExecutionId, Vec<Intervention>>> {
        let ids: Vec<String> = executions.iter().map(ToString::to_string).collect();
        let environments = readable(principal, Resource::Intervention, None);
        let rows = store::interventions::of_executions(self.inner.store.connection(), ids, environments).await?;
        let mut found: HashMap<ExecutionId, Vec<Intervention>> = HashMap::new();
        for row in rows {
            let intervention = records::intervention(row)?;
            found.entry(intervention.execution_id).or_default().push(intervention);
        }
        Ok(found)
    }

    /// What `principal` may do to `execution` now: the actions legal in its status that the
    /// steering rule lets this caller take (RESPOND is listed per intervention).
    pub async fn allowed_actions(&self, principal: &Principal, execution: &Execution) -> Result<Vec<Action>> {
        let definition = self.inner.definition(&execution.runtime_id, execution.runtime_version).await?;
        let role = transition::role_at(definition.playbook(&execution.playbook)?, execution.current_step_index);
        let is_child = execution.parent_id.is_some();
        Ok(Action::ALL
            .iter()
            .copied()
            .filter(|action| *action != Action::Respond)
            .filter(|action| transition::is_legal_for(*action, execution.status, is_child))
            .filter(|action| access::may_steer(principal, execution.environment, *action, role))
            .collect())
    }

    /// What `principal` may do to `intervention` now; see [`transition::allowed_on`].
    pub fn intervention_actions(&self, principal: &Principal, intervention: &Intervention) -> Vec<Action> {
        transition::allowed_on(principal, intervention)
    }

    /// Applies a person's action to an execution; see [`transition::LEGAL`].
    pub async fn act(&self, principal: &Principal, id: ExecutionId, command: Command) -> Result<Execution> {
        transition::apply(&self.inner, principal, id, command).await
    }
}
