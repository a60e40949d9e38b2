//! Permissions: per-environment grants of read and write per resource kind, and admin. Every
//! engine operation checks them here, in one place, whatever protocol the request came by.
//!
//! A grant is written `environment[:access[:resource]]`: `production` alone is that
//! environment's default (DESIGN.md section 6); `staging:read` reads everything;
//! `staging:write` reads and writes everything; `development:admin` adds admin;
//! `production:write:execution` adds one permission.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::engine::error::{Error, Result};
use crate::engine::types::{Action, Environment, Principal};

macro_rules! resources {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// What a permission is about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Resource { $($variant),+ }

        impl Resource {
            pub const ALL: &'static [Resource] = &[$(Resource::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Resource::$variant => $text),+ }
            }

            fn parse(text: &str) -> Option<Resource> {
                match text { $($text => Some(Resource::$variant),)+ _ => None }
            }
        }
    };
}

resources! {
    Runtime = "runtime",
    Playbook = "playbook",
    Execution = "execution",
    Role = "role",
    Operation = "operation",
    Intervention = "intervention",
}

/// Reading or changing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Access::Read => "read",
            Access::Write => "write",
        })
    }
}

/// What a principal may do in one environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentGrant {
    pub read: BTreeSet<Resource>,
    pub write: BTreeSet<Resource>,
    pub admin: bool,
}

/// What a principal may do, per environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    environments: BTreeMap<Environment, EnvironmentGrant>,
}

impl Grants {
    /// Everything everywhere: the engine itself and command-line administration.
    pub fn all() -> Grants {
        let mut grants = Grants::default();
        for environment in Environment::ALL {
            grants.add(*environment, "admin", None);
        }
        grants
    }

    /// Parses grant strings; a bad one is an error naming it.
    pub fn parse<S: AsRef<str>>(list: &[S]) -> std::result::Result<Grants, String> {
        let mut grants = Grants::default();
        for text in list {
            let text = text.as_ref().trim();
            let mut parts = text.split(':');
            let environment: Environment = parts.next().unwrap_or_default().parse()?;
            let access = parts.next().unwrap_or("default");
            let resource = match parts.next() {
                Some(name) => Some(Resource::parse(name).ok_or_else(|| {
                    let known: Vec<&str> = Resource::ALL.iter().map(|resource| resource.as_str()).collect();
                    format!("grant `{text}`: unknown resource `{name}`; expected one of {}", known.join(", "))
                })?),
                None => None,
            };
            if parts.next().is_some() || !matches!(access, "default" | "read" | "write" | "admin") {
                return Err(format!(
                    "grant `{text}` must be environment[:default|read|write|admin[:resource]], e.g. production:read"
                ));
            }
            if access == "admin" && resource.is_some() {
                return Err(format!("grant `{text}`: admin applies to a whole environment, not one resource"));
            }
            grants.add(environment, access, resource);
        }
        Ok(grants)
    }

    fn add(&mut self, environment: Environment, access: &str, resource: Option<Resource>) {
        let grant = self.environments.entry(environment).or_default();
        let all = Resource::ALL.iter().copied();
        match (access, resource) {
            ("default", _) => match environment {
                // DESIGN.md section 6: people in production read definitions and run and answer
                // processes, but deploy nothing and administer nothing.
                Environment::Production | Environment::Staging => {
                    grant.read.extend(all);
                    grant.write.extend([Resource::Execution, Resource::Intervention]);
                }
                Environment::Development | Environment::Simulation => {
                    grant.read.extend(all);
                    grant.write.extend([Resource::Runtime, Resource::Execution, Resource::Intervention]);
                    grant.admin = true;
                }
            },
            ("read", None) => grant.read.extend(all),
            ("read", Some(resource)) => {
                grant.read.insert(resource);
            }
            ("write", None) => {
                grant.read.extend(all.clone());
                grant.write.extend(all);
            }
            ("write", Some(resource)) => {
                grant.read.insert(resource);
                grant.write.insert(resource);
            }
            _ => {
                grant.read.extend(all.clone());
                grant.write.extend(all);
                grant.admin = true;
            }
        }
    }

    pub fn allows(&self, environment: Environment, access: Access, resource: Resource) -> bool {
        self.environments.get(&environment).is_some_and(|grant| match access {
            Access::Read => grant.read.contains(&resource),
            Access::Write => grant.write.contains(&resource),
        })
    }

    pub fn is_admin(&self, environment: Environment) -> bool {
        self.environments.get(&environment).is_some_and(|grant| grant.admin)
    }

    /// The environments where `resource` may be read.
    pub fn readable(&self, resource: Resource) -> Vec<Environment> {
        Environment::ALL
            .iter()
            .copied()
            .filter(|environment| self.allows(*environment, Access::Read, resource))
            .collect()
    }

    /// These grants, kept only in `environments`.
    pub fn restricted_to(&self, environments: &[Environment]) -> Grants {
        let mut restricted = self.clone();
        restricted.environments.retain(|environment, _| environments.contains(environment));
        restricted
    }

    pub fn environments(&self) -> impl Iterator<Item = Environment> + '_ {
        self.environments.keys().copied()
    }

    /// The grants written as strings, the most compact way.
    pub fn to_strings(&self) -> Vec<String> {
        let mut list = Vec::new();
        for (environment, grant) in &self.environments {
            if grant.admin {
                list.push(format!("{environment}:admin"));
                continue;
            }
            for resource in Resource::ALL {
                if grant.write.contains(resource) {
                    list.push(format!("{environment}:write:{}", resource.as_str()));
                } else if grant.read.contains(resource) {
                    list.push(format!("{environment}:read:{}", resource.as_str()));
                }
            }
        }
        list
    }
}

/// Checks one permission; the error says who may not do what where.
pub fn authorize(principal: &Principal, environment: Environment, access: Access, resource: Resource) -> Result<()> {
    if principal.grants.allows(environment, access, resource) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!("`{}` may not {access} {}s in {environment}", principal.id, resource.as_str())))
    }
}

/// The environments where `principal` may read `resource`, narrowed to `only` if given: the
/// filter every list query starts from.
pub(crate) fn readable(principal: &Principal, resource: Resource, only: Option<Environment>) -> Vec<&'static str> {
    principal
        .grants
        .readable(resource)
        .into_iter()
        .filter(|environment| only.is_none_or(|only| only == *environment))
        .map(Environment::as_str)
        .collect()
}

/// What a steering action asks of its caller beyond writing executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Steering {
    /// Stops or starts the process without deciding anything for a step (PAUSE, RESUME, ABORT):
    /// `write:execution` is enough.
    Control,
    /// Decides the outcome of the step the execution stands at, or moves it or its data
    /// (RESPOND, RETRY, SKIP, BACK, JUMP, EDIT_STATE): also `write:intervention`, and the
    /// step's role, unless the caller administers the environment.
    StepMove,
}

impl Steering {
    pub fn of(action: Action) -> Steering {
        match action {
            Action::Pause | Action::Resume | Action::Abort => Steering::Control,
            Action::Respond | Action::Retry | Action::Skip | Action::Back | Action::Jump | Action::EditState => {
                Steering::StepMove
            }
        }
    }
}

/// The steering rule, the one place that says who may apply `action` to an execution in
/// Who may answer what: the one rule behind [`Principal::may_answer`] (steering, RESPOND) and
/// the inbox's "mine" filter, which the store states as SQL from the same data
/// (`store::interventions::answerable_by`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRule {
    /// Environments the principal administers: anything in them.
    pub administered: Vec<Environment>,
    /// Roles the principal holds: interventions for those roles, and those for no role.
    pub roles: Vec<String>,
}

impl AnswerRule {
    pub fn of(principal: &Principal) -> AnswerRule {
        AnswerRule {
            administered: Environment::ALL
                .iter()
                .copied()
                .filter(|environment| principal.grants.is_admin(*environment))
                .collect(),
            roles: principal.roles.iter().cloned().collect(),
        }
    }

    /// Whether an intervention for `role` in `environment` may be answered under this rule.
    pub fn allows(&self, role: Option<&str>, environment: Environment) -> bool {
        self.administered.contains(&environment) || role.is_none_or(|role| self.roles.iter().any(|held| held == role))
    }
}

/// `environment` that stands at a step assigned to `role` (for RESPOND, the intervention's
/// role). Every protocol's steering, and every `allowedActions` list, goes through it.
pub fn authorize_steering(
    principal: &Principal,
    environment: Environment,
    action: Action,
    role: Option<&str>,
) -> Result<()> {
    authorize(principal, environment, Access::Write, Resource::Execution)?;
    if Steering::of(action) == Steering::Control {
        return Ok(());
    }
    authorize(principal, environment, Access::Write, Resource::Intervention)?;
    if principal.may_answer(role, environment) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "{action} acts for the step's role `{}`, which `{}` does not hold in {environment}",
            role.unwrap_or_default(),
            principal.id
        )))
    }
}

/// Whether [`authorize_steering`] lets `principal` apply `action`.
pub fn may_steer(principal: &Principal, environment: Environment, action: Action, role: Option<&str>) -> bool {
    authorize_steering(principal, environment, action, role).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let grants = Grants::parse(&["production", "development"]).expect("valid");
        assert!(grants.allows(Environment::Production, Access::Read, Resource::Runtime));
        assert!(grants.allows(Environment::Production, Access::Write, Resource::Execution));
        assert!(!grants.allows(Environment::Production, Access::Write, Resource::Runtime));
        assert!(!grants.is_admin(Environment::Production));
        assert!(grants.allows(Environment::Development, Access::Write, Resource::Runtime));
        assert!(grants.is_admin(Environment::Development));
        assert!(!grants.allows(Environment::Staging, Access::Read, Resource::Runtime));
    }

    #[test]
    fn fine_grants_and_errors() {
        let grants = Grants::parse(&["staging:read", "staging:write:intervention"]).expect("valid");
        assert!(grants.allows(Environment::Staging, Access::Write, Resource::Intervention));
        assert!(!grants.allows(Environment::Staging, Access::Write, Resource::Execution));
        assert!(Grants::parse(&["moon:read"]).is_err());
        assert!(Grants::parse(&["staging:fly"]).is_err());
        assert!(Grants::parse(&["staging:read:thing"]).is_err());
        assert!(Grants::parse(&["staging:admin:runtime"]).is_err());
        let round = Grants::parse(&Grants::parse(&["production", "development:admin"]).expect("valid").to_strings());
        assert_eq!(round, Grants::parse(&["production", "development:admin"]));
    }

    #[test]
    fn steering_needs_the_step_role_for_moves_and_write_for_controls() {
        let cook = Principal::new("cook", ["cook"], Grants::parse(&["production"]).expect("valid"));
        let waiter = Principal::new("waiter", ["waiter"], Grants::parse(&["production"]).expect("valid"));
        let operator = Principal::new(
            "operator",
            ["cook"],
            Grants::parse(&["production:read", "production:write:execution"]).expect("valid"),
        );
        let admin = Principal::new("admin", Vec::<String>::new(), Grants::parse(&["production:admin"]).expect("valid"));
        let production = Environment::Production;
        for action in Action::ALL.iter().copied() {
            let control = Steering::of(action) == Steering::Control;
            assert!(may_steer(&cook, production, action, Some("cook")), "{action}");
            assert!(may_steer(&admin, production, action, Some("cook")), "{action}");
            assert_eq!(may_steer(&waiter, production, action, Some("cook")), control, "{action}");
            assert_eq!(may_steer(&operator, production, action, Some("cook")), control, "{action}");
            assert!(!may_steer(&cook, Environment::Staging, action, Some("cook")), "{action}");
            // A step with no role is anyone's who may write interventions.
            assert!(may_steer(&waiter, production, action, None), "{action}");
        }
    }
}
