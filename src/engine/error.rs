//! The engine's typed errors. Each kind has one [`ErrorCode`]; every protocol maps codes to its
//! own shape in exactly one function.

use crate::engine::types::{Action, Environment, ExecutionId, ExecutionStatus, InterventionId, InterventionStatus};
use crate::package::Problem;
use crate::schema::FieldError;

/// How a protocol should present an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    BadInput,
    NotFound,
    Conflict,
    Unauthenticated,
    Forbidden,
    /// A request body or message over the configured limit; raised at the protocol edge,
    /// named here so that every protocol reports it with the same code.
    PayloadTooLarge,
    Internal,
}

impl ErrorCode {
    /// Every code, in the order above.
    pub const ALL: [ErrorCode; 7] = [
        ErrorCode::BadInput,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::PayloadTooLarge,
        ErrorCode::Internal,
    ];

    /// The code `as_str` names; anything else is internal.
    pub fn parse(code: &str) -> ErrorCode {
        ErrorCode::ALL.into_iter().find(|known| known.as_str() == code).unwrap_or(ErrorCode::Internal)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadInput => "BAD_INPUT",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::Internal => "INTERNAL",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// BAD_INPUT: the package breaks its format; every problem is listed.
    #[error("the package is invalid: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidPackage { problems: Vec<Problem> },
    /// BAD_INPUT: a value breaks the schema it must fit; every field is listed.
    #[error("{what} is invalid: {}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidValue { what: String, errors: Vec<FieldError> },
    /// BAD_INPUT: an argument is malformed or out of range.
    #[error("{0}")]
    BadInput(String),
    /// NOT_FOUND
    #[error("runtime `{0}` not found")]
    RuntimeNotFound(String),
    /// NOT_FOUND
    #[error("playbook `{playbook}` not found in runtime `{runtime}`")]
    PlaybookNotFound { runtime: String, playbook: String },
    /// NOT_FOUND
    #[error("{kind} `{name}` not found in runtime `{runtime}`")]
    DefinitionNotFound { runtime: String, kind: &'static str, name: String },
    /// NOT_FOUND
    #[error("step `{step}` not found in playbook `{playbook}`")]
    StepNotFound { playbook: String, step: String },
    /// NOT_FOUND
    #[error("{0}")]
    NotFound(String),
    /// NOT_FOUND
    #[error("execution {0} not found")]
    ExecutionNotFound(ExecutionId),
    /// NOT_FOUND
    #[error("intervention {0} not found")]
    InterventionNotFound(InterventionId),
    /// CONFLICT: the execution's status does not allow the action.
    #[error("execution {id} is {status}; cannot {action}")]
    WrongState { id: ExecutionId, status: ExecutionStatus, action: Action },
    /// CONFLICT: the intervention was already answered or cancelled.
    #[error("intervention {id} is {status}; it can no longer be answered")]
    InterventionClosed { id: InterventionId, status: InterventionStatus },
    /// CONFLICT
    #[error("{0}")]
    Conflict(String),
    /// CONFLICT: a runtime id belongs to one environment.
    #[error("runtime `{runtime}` lives in {existing}; it cannot be deployed to {requested}")]
    EnvironmentMismatch { runtime: String, existing: Environment, requested: Environment },
    /// CONFLICT: a runtime id belongs to the package first deployed under it.
    #[error(
        "runtime `{runtime}` holds package `{existing}`; package `{requested}` cannot be deployed under it (choose another runtime id)"
    )]
    RuntimeTaken { runtime: String, existing: String, requested: String },
    /// FORBIDDEN
    #[error("{0}")]
    Forbidden(String),
    /// UNAUTHENTICATED
    #[error("{0}")]
    Unauthenticated(String),
    /// INTERNAL: logged, never shown.
    #[error("database error: {0}")]
    Store(#[from] sea_orm::DbErr),
    /// INTERNAL: logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidPackage { .. } | Error::InvalidValue { .. } | Error::BadInput(_) => ErrorCode::BadInput,
            Error::RuntimeNotFound(_)
            | Error::NotFound(_)
            | Error::PlaybookNotFound { .. }
            | Error::DefinitionNotFound { .. }
            | Error::StepNotFound { .. }
            | Error::ExecutionNotFound(_)
            | Error::InterventionNotFound(_) => ErrorCode::NotFound,
            Error::WrongState { .. }
            | Error::InterventionClosed { .. }
            | Error::Conflict(_)
            | Error::EnvironmentMismatch { .. }
            | Error::RuntimeTaken { .. } => ErrorCode::Conflict,
            Error::Forbidden(_) => ErrorCode::Forbidden,
            Error::Unauthenticated(_) => ErrorCode::Unauthenticated,
            Error::Store(_) | Error::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The message a client may see: internal details are replaced by a generic sentence.
    pub fn public_message(&self) -> String {
        match self.code() {
            ErrorCode::Internal => "internal error; the server log has the details".to_owned(),
            _ => self.to_string(),
        }
    }

    /// Field-level errors, as JSON pointers and messages, for protocols to list.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            Error::InvalidValue { errors, .. } => errors.clone(),
            Error::InvalidPackage { problems } => problems
                .iter()
                .map(|problem| FieldError {
                    pointer: problem.path.clone(),
                    message: format!("{}: {}", problem.file, problem.message),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, errors: Vec<FieldError>) -> Error {
        Error::InvalidValue { what: what.into(), errors }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
