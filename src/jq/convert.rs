//! Values between `serde_json` and jaq, with output nesting bounded; jaq's load errors as text.

use jaq_core::load;
use jaq_json::{Num, Val};
use serde_json::Value;

use super::*;

pub(super) fn load_errors(errors: load::Errors<&str, ()>) -> Vec<String> {
    let mut messages = Vec::new();
    for (file, error) in errors {
        let code = file.code;
        match error {
            load::Error::Io(errors) => {
                messages.extend(errors.into_iter().map(|(path, error)| format!("cannot load {path}: {error}")))
            }
            load::Error::Lex(errors) => messages.extend(errors.into_iter().map(|(expected, found)| {
                let end = found.char_indices().nth(1).map_or(found.len(), |(index, _)| index);
                let mut message = format!("expected {} at {}", expected.as_str(), locate(code, &found[..end]));
                if let load::lex::Expect::Delim(open) = expected {
                    message += &format!(" (unclosed `{open}` at {})", locate(code, open));
                }
                message
            })),
            load::Error::Parse(errors) => messages.extend(
                errors
                    .into_iter()
                    .map(|(expected, found)| format!("expected {} at {}", expected.as_str(), locate(code, found))),
            ),
        }
    }
    messages
}

/// `line:column` of a slice of `code`, with the text found there.
pub(super) fn locate(code: &str, part: &str) -> String {
    let span = load::span(code, part);
    let before = &code[..span.start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    if part.is_empty() { format!("{line}:{column} (end of program)") } else { format!("{line}:{column} near `{part}`") }
}

pub(super) fn to_val(value: &Value) -> Val {
    match value {
        Value::Null => Val::Null,
        Value::Bool(boolean) => Val::Bool(*boolean),
        Value::Number(number) => match number.as_i64().and_then(|integer| isize::try_from(integer).ok()) {
            Some(integer) => Val::Num(Num::Int(integer)),
            None => Val::Num(Num::Float(number.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(string) => Val::from(string.clone()),
        Value::Array(items) => items.iter().map(to_val).collect(),
        Value::Object(object) => {
            Val::obj(object.iter().map(|(key, value)| (Val::from(key.clone()), to_val(value))).collect())
        }
    }
}

/// `value` as JSON; `depth` is how many arrays and objects enclose it.
pub(super) fn from_val(value: Val, depth: usize) -> Result<Value, String> {
    let nested = |depth: usize| {
        if depth >= MAX_OUTPUT_DEPTH {
            Err(format!("its output nests deeper than {MAX_OUTPUT_DEPTH} levels"))
        } else {
            Ok(depth + 1)
        }
    };
    Ok(match value {
        Val::Null => Value::Null,
        Val::Bool(boolean) => Value::Bool(boolean),
        Val::Num(number) => from_num(&number),
        Val::TStr(bytes) | Val::BStr(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        Val::Arr(items) => {
            let depth = nested(depth)?;
            Value::Array(items.iter().map(|item| from_val(item.clone(), depth)).collect::<Result<_, _>>()?)
        }
        Val::Obj(object) => {
            let depth = nested(depth)?;
            Value::Object(
                object
                    .iter()
                    .map(|(key, value)| {
                        let key = match key {
                            Val::TStr(bytes) | Val::BStr(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                            other => other.to_string(),
                        };
                        Ok((key, from_val(value.clone(), depth)?))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
    })
}

pub(super) fn from_num(number: &Num) -> Value {
    // Like jq: NaN is null, infinities are the largest finite doubles.
    let float = |float: f64| {
        if float.is_nan() {
            Value::Null
        } else if float.is_infinite() {
            serde_json::Number::from_f64(f64::MAX.copysign(float)).map_or(Value::Null, Value::Number)
        } else {
            serde_json::Number::from_f64(float).map_or(Value::Null, Value::Number)
        }
    };
    match number {
        Num::Int(integer) => Value::from(*integer as i64),
        Num::Float(value) => float(*value),
        other => {
            let text = other.to_string();
            text.parse::<i64>()
                .map(Value::from)
                .or_else(|_| text.parse::<u64>().map(Value::from))
                .unwrap_or_else(|_| float(text.parse::<f64>().unwrap_or(f64::NAN)))
        }
    }
}
