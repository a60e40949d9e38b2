//! The engine's enumerations as column types: a row holds an execution's status, mode and
//! environment (and an intervention's kind and status) typed, converted from and to their
//! stored spelling here, once, at the store boundary. A spelling the engine does not know
//! fails the read with a store error naming the column's type, never later inside a
//! transition.

use std::sync::Arc;

use sea_orm::sea_query::{ArrayType, ColumnType, Nullable, StringLen, ValueType, ValueTypeErr};
use sea_orm::{ActiveValue, ColIdx, DbErr, IntoActiveValue, QueryResult, TryGetError, TryGetable, Value};

use crate::engine::{Environment, EventType, ExecutionStatus, InterventionKind, InterventionStatus, Mode};

/// Why a stored spelling is not a value of the column's type.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Unknown(String);

macro_rules! stored_as_text {
    ($($name:ident),+ $(,)?) => {$(
        impl From<$name> for Value {
            fn from(value: $name) -> Value {
                value.as_str().into()
            }
        }

        impl TryGetable for $name {
            fn try_get_by<I: ColIdx>(result: &QueryResult, index: I) -> Result<Self, TryGetError> {
                let text = String::try_get_by(result, index)?;
                text.parse().map_err(|error: String| {
                    TryGetError::DbErr(DbErr::TryIntoErr {
                        from: "String",
                        into: stringify!($name),
                        source: Arc::new(Unknown(error)),
                    })
                })
            }
        }

        impl ValueType for $name {
            fn try_from(value: Value) -> Result<Self, ValueTypeErr> {
                <String as ValueType>::try_from(value)?.parse().map_err(|_| ValueTypeErr)
            }

            fn type_name() -> String {
                stringify!($name).to_owned()
            }

            fn array_type() -> ArrayType {
                ArrayType::String
            }

            fn column_type() -> ColumnType {
                ColumnType::String(StringLen::None)
            }
        }

        impl Nullable for $name {
            fn null() -> Value {
                Value::String(None)
            }
        }

        impl IntoActiveValue<$name> for $name {
            fn into_active_value(self) -> ActiveValue<$name> {
                ActiveValue::Set(self)
            }
        }
    )+};
}

stored_as_text!(Environment, ExecutionStatus, Mode, EventType, InterventionKind, InterventionStatus);
