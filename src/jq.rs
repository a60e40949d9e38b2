//! jq programs (jaq): compiled once when a runtime is loaded, run over `serde_json` values.
//!
//! jaq has no fuel or interrupt, so a program that never yields cannot be stopped from inside;
//! outputs are taken lazily and bounded by [`MAX_OUTPUTS`], and the engine runs programs off the
//! async workers. Programs come from deployed packages, which only principals allowed to deploy
//! may write.

use std::fmt;
use std::sync::Arc;

use jaq_core::data::JustLut;
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, compile};
use jaq_json::{Num, Val};
use serde_json::Value;

type Filter = jaq_core::Filter<JustLut<Val>>;

/// The most outputs a program may produce.
pub const MAX_OUTPUTS: usize = 10_000;

/// A compiled jq program; cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Program {
    code: Arc<str>,
    filter: Arc<Filter>,
}

impl fmt::Debug for Program {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_tuple("Program").field(&self.code).finish()
    }
}

impl Program {
    /// Compiles a program with jq's standard library; errors give line and column.
    pub fn compile(code: &str) -> Result<Program, String> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let arena = Arena::default();
        // `Loader::new` refuses `import` and `include`: a program cannot read files.
        let modules =
            Loader::new(defs).load(&arena, File { code, path: () }).map_err(|errors| load_errors(errors).join("; "))?;
        let filter = Compiler::default().with_funs(funs).compile(modules).map_err(|errors| {
            errors
                .into_iter()
                .flat_map(|(file, undefined)| {
                    let code = file.code;
                    undefined.into_iter().map(move |(name, what)| {
                        let what = match what {
                            compile::Undefined::Filter(arity) => format!("filter {name}/{arity}"),
                            other => format!("{} {name}", other.as_str()),
                        };
                        format!("undefined {what} at {}", locate(code, name))
                    })
                })
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Ok(Program { code: code.into(), filter: Arc::new(filter) })
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// Every output of the program over `input`.
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, String> {
        let context = Ctx::<JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut outputs = Vec::new();
        for output in self.filter.id.run((context, to_val(input))) {
            if outputs.len() == MAX_OUTPUTS {
                return Err(format!("produced more than {MAX_OUTPUTS} outputs"));
            }
            // Never `jaq_core::unwrap_valr`: on `halt` it exits the process.
            let value = output.map_err(|exception| match exception.get_err() {
                Ok(error) => match error.into_val() {
                    Val::TStr(text) => String::from_utf8_lossy(&text).into_owned(),
                    other => other.to_string(),
                },
                Err(exception) => match exception.get_halt() {
                    Ok(code) => format!("halted with exit code {code}"),
                    Err(_) => "the program raised an exception it did not catch".to_owned(),
                },
            })?;
            outputs.push(from_val(value));
        }
        Ok(outputs)
    }

    /// The program's single output; none or several is an error.
    pub fn one(&self, input: &Value) -> Result<Value, String> {
        let mut outputs = self.run(input)?;
        match outputs.len() {
            1 => Ok(outputs.remove(0)),
            0 => Err("produced no output; a value was expected".to_owned()),
            many => Err(format!("produced {many} outputs; exactly one was expected")),
        }
    }

    /// Whether the program's first output is truthy (neither `false` nor `null`); no output
    /// counts as false.
    pub fn test(&self, input: &Value) -> Result<bool, String> {
        let outputs = self.run(input)?;
        Ok(matches!(outputs.first(), Some(value) if !matches!(value, Value::Null | Value::Bool(false))))
    }
}

/// Text with `{{ jq }}` placeholders, e.g. a prompt: `Make a {{ .input.sandwichType }} one`.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Program(Program),
}

impl Template {
    pub fn compile(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(length) = rest[start + 2..].find("}}") else {
                return Err(format!(
                    "placeholder opened at byte {} is never closed with }}}}",
                    text.len() - rest.len() + start
                ));
            };
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let code = rest[start + 2..start + 2 + length].trim();
            let program = Program::compile(code).map_err(|error| format!("in {{{{ {code} }}}}: {error}"))?;
            parts.push(Part::Program(program));
            rest = &rest[start + 2 + length + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The text with each placeholder replaced by its output (strings as they are, other
    /// values as JSON).
    pub fn render(&self, context: &Value) -> Result<String, String> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Text(literal) => text.push_str(literal),
                Part::Program(program) => {
                    for value in program.run(context)? {
                        match value {
                            Value::String(string) => text.push_str(&string),
                            other => text.push_str(&other.to_string()),
                        }
                    }
                }
            }
        }
        Ok(text)
    }
}

fn load_errors(errors: load::Errors<&str, ()>) -> Vec<String> {
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
fn locate(code: &str, part: &str) -> String {
    let span = load::span(code, part);
    let before = &code[..span.start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    if part.is_empty() { format!("{line}:{column} (end of program)") } else { format!("{line}:{column} near `{part}`") }
}

fn to_val(value: &Value) -> Val {
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

fn from_val(value: Val) -> Value {
    match value {
        Val::Null => Value::Null,
        Val::Bool(boolean) => Value::Bool(boolean),
        Val::Num(number) => from_num(&number),
        Val::TStr(bytes) | Val::BStr(bytes) => Value::String(String::from_utf8_lossy(&bytes).into_owned()),
        Val::Arr(items) => Value::Array(items.iter().cloned().map(from_val).collect()),
        Val::Obj(object) => Value::Object(
            object
                .iter()
                .map(|(key, value)| {
                    let key = match key {
                        Val::TStr(bytes) | Val::BStr(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                        other => other.to_string(),
                    };
                    (key, from_val(value.clone()))
                })
                .collect(),
        ),
    }
}

fn from_num(number: &Num) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn runs_over_the_context() {
        let program =
            Program::compile(r#"{name: "PB&J", flavor: .steps["choose-jelly"].jelly_flavor}"#).expect("compiles");
        let output = program.one(&json!({"steps": {"choose-jelly": {"jelly_flavor": "grape"}}})).expect("runs");
        assert_eq!(output, json!({"name": "PB&J", "flavor": "grape"}));
    }

    #[test]
    fn compile_errors_say_where() {
        let error = Program::compile("undefined_fn").expect_err("undefined");
        assert!(error.contains("undefined filter undefined_fn/0 at 1:1"), "{error}");
        let error = Program::compile("foo(").expect_err("unclosed");
        assert!(error.contains("1:"), "{error}");
    }

    #[test]
    fn runtime_errors_and_halts_are_errors() {
        assert!(Program::compile(r#"1 + "a""#).expect("compiles").run(&Value::Null).is_err());
        assert_eq!(Program::compile(r#"error("boom")"#).expect("compiles").run(&Value::Null), Err("boom".to_owned()));
        assert!(Program::compile("halt_error").expect("compiles").run(&json!("bye")).is_err());
    }

    #[test]
    fn endless_streams_are_cut() {
        let error = Program::compile("repeat(1)").expect("compiles").run(&Value::Null).expect_err("too many");
        assert!(error.contains("more than"), "{error}");
    }

    #[test]
    fn truthiness_follows_jq() {
        let program = Program::compile(".x").expect("compiles");
        assert!(program.test(&json!({"x": 0})).expect("runs"));
        assert!(!program.test(&json!({"x": null})).expect("runs"));
        assert!(!program.test(&json!({"x": false})).expect("runs"));
        assert!(!Program::compile("empty").expect("compiles").test(&Value::Null).expect("runs"));
    }

    #[test]
    fn templates_fill_placeholders() {
        let template = Template::compile("Make a {{ .input.kind }} sandwich for {{ .input.n }}").expect("compiles");
        assert_eq!(
            template.render(&json!({"input": {"kind": "classic", "n": 2}})).expect("renders"),
            "Make a classic sandwich for 2"
        );
        assert!(Template::compile("{{ .a ").is_err());
        assert!(Template::compile("{{ nope }}").is_err());
    }
}
