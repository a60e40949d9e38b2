//! Prompt templates: text with `{{ jq }}` placeholders filled from the execution context.

use serde_json::Value;

use super::*;

/// Text with `{{ jq }}` placeholders, e.g. a prompt: `Make a {{ .input.sandwichType }} one`.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
pub(super) enum Part {
    Text(String),
    Program(Program),
}

impl Template {
    /// About how many bytes its compiled placeholders hold.
    pub fn bytes(&self) -> usize {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Text(text) => text.len(),
                Part::Program(program) => program.bytes(),
            })
            .sum()
    }

    /// The most placeholders a template may hold; each is a program compiled on its own.
    pub const MAX_PLACEHOLDERS: usize = 100;

    pub fn compile(text: &str) -> Result<Template, String> {
        let (template, problems) = Template::parse(text);
        match problems.into_iter().next() {
            None => Ok(template),
            Some(problem) => Err(problem),
        }
    }

    /// Every problem with a template's placeholders, not only the first (for `package validate`).
    pub fn problems(text: &str) -> Vec<String> {
        Template::parse(text).1
    }

    /// The template's parts, and what is wrong with its placeholders: each placeholder is
    /// compiled on its own, so all of them are checked; an unclosed one or one too many ends
    /// the scan.
    fn parse(text: &str) -> (Template, Vec<String>) {
        let mut parts = Vec::new();
        let mut problems = Vec::new();
        let mut rest = text;
        let mut placeholders = 0;
        while let Some(start) = rest.find("{{") {
            placeholders += 1;
            if placeholders > Template::MAX_PLACEHOLDERS {
                problems.push(format!(
                    "placeholder opened at byte {} is one too many: a template may hold at most {} placeholders",
                    text.len() - rest.len() + start,
                    Template::MAX_PLACEHOLDERS
                ));
                return (Template { parts }, problems);
            }
            let Some(length) = rest[start + 2..].find("}}") else {
                problems.push(format!(
                    "placeholder opened at byte {} is never closed with }}}}",
                    text.len() - rest.len() + start
                ));
                return (Template { parts }, problems);
            };
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_owned()));
            }
            let code = rest[start + 2..start + 2 + length].trim();
            match Program::compile(code) {
                Ok(program) => parts.push(Part::Program(program)),
                Err(error) => problems.push(format!("in {{{{ {code} }}}}: {error}")),
            }
            rest = &rest[start + 2 + length + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        (Template { parts }, problems)
    }

    /// The text with each placeholder replaced by its output (strings as they are, other
    /// values as JSON).
    pub fn render_in(&self, context: &Value, allowance: Allowance) -> Result<String, Stopped> {
        let mut text = String::new();
        for part in &self.parts {
            match part {
                Part::Text(literal) => text.push_str(literal),
                Part::Program(program) => {
                    for value in program.run_in(context, allowance)? {
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
