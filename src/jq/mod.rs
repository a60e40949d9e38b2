//! jq programs (jaq): compiled once when a runtime is loaded, run over `serde_json` values.
//!
//! Programs come from deployed packages, which only principals allowed to deploy may write, but a
//! mistaken one must not take the server down. Every evaluation runs under a [`Budget`] of steps
//! and time on an evaluator thread with a large stack: jaq looks up its table of terms through
//! the data type once per term it evaluates (and once per native call), and that look-up is where
//! the [`Gauge`] counts steps, checks the clock and checks how much stack the evaluation uses.
//! When one runs out it unwinds the evaluation (without the panic hook) to [`evaluate`], which
//! reports a clear error and ends that thread; nothing keeps spinning.
//!
//! Below a metered step, native code recurses once per nesting level of a value (dropping,
//! comparing or printing it), and building a level costs at least two steps, so the evaluator's
//! stack is sized from the step budget ([`stack_for`]). `range` is replaced by a metered one,
//! `fromjson` by one that refuses JSON nested deeper than 128 levels, `env` is removed (it would
//! show the server's environment, secrets included) and `debug`/`stderr` write nothing. Outputs
//! are bounded by [`MAX_OUTPUTS`] and nest at most [`MAX_OUTPUT_DEPTH`] levels.
//!
//! What the meter cannot see is the work inside one native operation: its cost is bounded by
//! its operands, which the budget bounds, but some operations are superlinear (`..` over a
//! deeply nested value, `indices` and `contains` on long strings and arrays), and string
//! repetition (`"x" * n`) allocates `n` copies at once. A program written to exhaust the server
//! can still do so; only a killable sandbox process would stop that.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, compile};
use serde_json::Value;

type Filter = jaq_core::Filter<Metered>;
type Lut = jaq_core::Lut<Metered>;

/// The most outputs a program may produce.
pub const MAX_OUTPUTS: usize = 10_000;

/// The deepest nesting of a program's output (a context holds outputs a few levels down, and
/// JSON deeper than 128 levels cannot be read back).
pub const MAX_OUTPUT_DEPTH: usize = 64;

/// How much stack an evaluation may use while jaq recurses.
const EVALUATION_STACK: usize = 32 << 20;
/// Stack kept below that for each step of the budget: a value nested `n` levels deep takes at
/// least `2 n` steps to build, and printing it (the deepest native recursion) takes about
/// 1.3 KiB of stack per level in debug builds.
const STACK_PER_STEP: usize = 640;
/// The largest step budget (the stack it implies is reserved, not committed).
pub const MAX_STEPS: u64 = 10_000_000;
/// How many idle evaluator threads are kept.
const IDLE_EVALUATORS: usize = 4;
/// An evaluator that ran more steps than this ends after it: its stack may hold many touched
/// pages, which only ending the thread gives back.
const RETIRE_AFTER_STEPS: u64 = 100_000;

/// What one evaluation of a program may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Steps: terms evaluated, native filters called and values a native generator yields.
    pub steps: u64,
    /// Wall-clock time.
    pub time: Duration,
    /// Bytes the evaluation's live values may hold beyond what it started with (counted by
    /// [`CountingAllocator`] on the evaluator thread, checked at every step).
    pub bytes: usize,
}

impl Budget {
    pub const DEFAULT: Budget = Budget { steps: 1_000_000, time: Duration::from_secs(1), bytes: 64 << 20 };
}

impl Default for Budget {
    fn default() -> Budget {
        Budget::DEFAULT
    }
}

/// The stack an evaluator needs for `budget`: the recursion allowance plus room to drop and
/// print the deepest value the budget can build.
pub fn stack_for(budget: Budget) -> usize {
    let steps = usize::try_from(budget.steps.min(MAX_STEPS)).unwrap_or(usize::MAX);
    EVALUATION_STACK.saturating_add(steps.saturating_mul(STACK_PER_STEP)).saturating_add(1 << 20)
}

mod alloc;
mod allowance;
mod convert;
mod evaluator;
mod meter;
mod template;

pub use alloc::CountingAllocator;
use alloc::*;
pub use allowance::{Allowance, Slice, Stopped};
use convert::*;
use evaluator::*;
pub use meter::*;
pub use template::Template;

/// A compiled jq program; cheap to clone and shareable across threads.
#[derive(Clone)]
pub struct Program {
    code: Arc<str>,
    filter: Arc<Filter>,
    /// About how many bytes the compiled filter holds (see [`Program::bytes`]).
    bytes: usize,
}

/// Compiled programs by their text, while anything holds them: every step of every deployed
/// version with the same program shares one filter (each holds its own copy of jq's standard
/// library, about 100 KiB), so redeploying a package, or many steps repeating a program, costs
/// its programs once.
static COMPILED: Mutex<Option<Compiled>> = Mutex::new(None);

/// Program text → its filter (while held) and the filter's size in bytes.
type Compiled = std::collections::HashMap<Arc<str>, (std::sync::Weak<Filter>, usize)>;

impl fmt::Debug for Program {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_tuple("Program").field(&self.code).finish()
    }
}

impl Program {
    /// Compiles a program with jq's standard library; errors give line and column.
    ///
    /// jaq's lexer, parser and compiler recurse once per level of nesting (`((…))`, `- - 1`,
    /// `1 + 1 + …`, `if … then if …`), with up to a few KiB of stack per level: a program of a
    /// thousand levels would overflow an async worker's 2 MiB stack and abort the server. So a
    /// program may be at most [`Program::MAX_BYTES`] long and is compiled on a thread whose
    /// stack holds the deepest program of that length three times over.
    pub fn compile(code: &str) -> Result<Program, String> {
        if code.len() > Program::MAX_BYTES {
            return Err(format!(
                "the program is {} bytes long; a jq program may be at most {} bytes",
                code.len(),
                Program::MAX_BYTES
            ));
        }
        if let Some(program) = Program::shared(code) {
            return Ok(program);
        }
        let program = std::thread::scope(|scope| {
            let compiler = std::thread::Builder::new()
                .name("orgata-jq-compile".to_owned())
                .stack_size(Program::COMPILER_STACK)
                .spawn_scoped(scope, || {
                    // What the compilation leaves allocated on this thread is the filter.
                    let before = live_bytes();
                    Program::compile_here(code).map(|mut program| {
                        program.bytes = usize::try_from(live_bytes().wrapping_sub(before)).unwrap_or(0);
                        program
                    })
                })
                .map_err(|error| format!("cannot start a thread to compile the program: {error}"))?;
            compiler.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        let mut compiled = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
        let compiled = compiled.get_or_insert_with(Default::default);
        // Forget programs nobody holds any more, now and then.
        if compiled.len() >= 1024 && compiled.len().is_power_of_two() {
            compiled.retain(|_, (filter, _)| filter.strong_count() > 0);
        }
        compiled.insert(program.code.clone(), (Arc::downgrade(&program.filter), program.bytes));
        Ok(program)
    }

    /// The program compiled from the same text, if something still holds it.
    fn shared(code: &str) -> Option<Program> {
        let compiled = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
        let (code, (filter, bytes)) = compiled.as_ref()?.get_key_value(code)?;
        Some(Program { code: code.clone(), filter: filter.upgrade()?, bytes: *bytes })
    }

    /// About how many bytes the compiled filter holds (shared by every program of the same
    /// text), for the engine's bounded definition cache.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The longest jq program, in bytes.
    pub const MAX_BYTES: usize = 32 * 1024;

    /// The stack programs are compiled on. Only the pages a compilation touches are committed:
    /// a few hundred KiB for ordinary programs, about 80 MiB for the deepest of
    /// [`Program::MAX_BYTES`] (measured under AddressSanitizer, whose frames are the larger).
    const COMPILER_STACK: usize = 256 << 20;

    fn compile_here(code: &str) -> Result<Program, String> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = natives();
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
        Ok(Program { code: code.into(), filter: Arc::new(filter), bytes: 0 })
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// Every output of the program over `input`, within the default [`Budget`].
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, String> {
        self.run_in(input, Allowance::whole(Budget::DEFAULT)).map_err(|stopped| stopped.to_string())
    }

    /// The program's single output within the default [`Budget`]; none or several is an error.
    pub fn one(&self, input: &Value) -> Result<Value, String> {
        self.one_in(input, Allowance::whole(Budget::DEFAULT)).map_err(|stopped| stopped.to_string())
    }

    /// Every output of the program over `input`, within `allowance`.
    pub fn run_in(&self, input: &Value, allowance: Allowance) -> Result<Vec<Value>, Stopped> {
        evaluate(&self.filter, input, allowance.limits()).map_err(|fault| allowance.stopped(fault))
    }

    /// The program's single output; none or several is an error.
    pub fn one_in(&self, input: &Value, allowance: Allowance) -> Result<Value, Stopped> {
        let mut outputs = self.run_in(input, allowance)?;
        match outputs.len() {
            1 => Ok(outputs.remove(0)),
            0 => Err(Stopped::Failed("produced no output; a value was expected".to_owned())),
            many => Err(Stopped::Failed(format!("produced {many} outputs; exactly one was expected"))),
        }
    }

    /// Whether the program's first output is truthy (neither `false` nor `null`); no output
    /// counts as false.
    pub fn test_in(&self, input: &Value, allowance: Allowance) -> Result<bool, Stopped> {
        let outputs = self.run_in(input, allowance)?;
        Ok(matches!(outputs.first(), Some(value) if !matches!(value, Value::Null | Value::Bool(false))))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

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
    fn a_spent_slice_is_not_a_failure_but_a_spent_budget_is() {
        let program = Program::compile("def f: f; f").expect("compiles");
        let budget = Budget { steps: 1_000_000, time: Duration::from_secs(60), ..Budget::DEFAULT };
        let slice = Slice { steps: 1_000, time: Duration::from_secs(60) };
        assert_eq!(program.run_in(&Value::Null, Allowance::sliced(budget, slice)), Err(Stopped::SliceSpent));
        let short = Slice { steps: 5_000_000, time: Duration::from_millis(20) };
        assert_eq!(program.run_in(&Value::Null, Allowance::sliced(budget, short)), Err(Stopped::SliceSpent));
        // A slice as large as the budget is the budget: spending it fails the program.
        let whole = Slice { steps: 1_000_000, time: Duration::from_secs(60) };
        let error = program.run_in(&Value::Null, Allowance::sliced(budget, whole)).expect_err("spent");
        assert_eq!(error, Stopped::Failed("ran out of its budget of 1000000 evaluation steps".to_owned()));
        let error = program.run_in(&Value::Null, Allowance::whole(budget)).expect_err("spent");
        assert_eq!(error, Stopped::Failed("ran out of its budget of 1000000 evaluation steps".to_owned()));
        // Errors are failures whatever the allowance; a program within its slice just runs.
        let failing = Program::compile(r#"error("boom")"#).expect("compiles");
        assert_eq!(failing.run_in(&Value::Null, Allowance::sliced(budget, slice)), Err(Stopped::Failed("boom".into())));
        let quick = Program::compile(". + 1").expect("compiles");
        assert_eq!(quick.one_in(&json!(1), Allowance::sliced(budget, slice)), Ok(json!(2)));
    }

    fn stopped(code: &str, budget: Budget) -> String {
        let program = Program::compile(code).expect("compiles");
        let started = Instant::now();
        let error = evaluate(&program.filter, &Value::Null, budget).expect_err("stopped").to_string();
        assert!(started.elapsed() < budget.time + Duration::from_secs(5), "{code} ran {:?}", started.elapsed());
        error
    }

    #[test]
    fn programs_that_build_huge_values_run_out_of_bytes() {
        // Doubling a string 29 times reaches 512 MiB in a few dozen steps; the size budget
        // stops it near its limit instead.
        let budget = Budget { steps: 1_000_000, time: Duration::from_secs(60), bytes: 16 << 20 };
        for code in [r#"reduce range(29) as $i ("x"; . + .)"#, "reduce range(24) as $i ([0]; . + .) | length"] {
            let error = stopped(code, budget);
            assert_eq!(error, "built values larger than its budget of 16 MiB", "{code}");
        }
        // Within the budget, the same kind of program runs.
        let program = Program::compile(r#"reduce range(10) as $i ("x"; . + .) | length"#).expect("compiles");
        assert_eq!(evaluate(&program.filter, &Value::Null, budget), Ok(vec![json!(1024)]));
    }

    #[test]
    fn endless_programs_run_out_of_steps() {
        let budget = Budget { steps: 100_000, time: Duration::from_secs(60), ..Budget::DEFAULT };
        for code in [
            "def f: f; f",
            "until(false; .)",
            "last(repeat(1))",
            "[repeat(1)]",
            "last(range(1e18))",
            "[range(1e18)]",
            "[limit(1e18; repeat(.))] | length",
            "reduce range(1e18) as $x (0; . + $x)",
        ] {
            let error = stopped(code, budget);
            assert_eq!(error, "ran out of its budget of 100000 evaluation steps", "{code}");
        }
    }

    #[test]
    fn endless_programs_run_out_of_time() {
        let budget = Budget { steps: 5_000_000, time: Duration::from_millis(50), ..Budget::DEFAULT };
        assert_eq!(stopped("def f: f; f", budget), "ran out of its time budget of 50 ms");
    }

    #[test]
    fn deep_recursion_is_stopped_not_a_crash() {
        let budget = Budget { steps: 1_000_000, time: Duration::from_secs(120), ..Budget::DEFAULT };
        for code in ["def f: 1 + f; f", "def f: [f]; f", "def f: f | f; f", "def f: (f | f), 1; [f]"] {
            assert_eq!(stopped(code, budget), "recursed too deeply (more than 32 MiB of stack)", "{code}");
        }
        // The evaluators still work.
        assert_eq!(Program::compile("1 + 1").expect("compiles").one(&Value::Null), Ok(json!(2)));
    }

    #[test]
    fn deep_values_within_the_budget_do_not_overflow() {
        // 1.2 million steps build a value 400,000 levels deep; printing and dropping it recurse
        // as deep, below any metered step.
        let budget = Budget { steps: 1_300_000, time: Duration::from_secs(120), ..Budget::DEFAULT };
        let program = Program::compile("reduce range(400000) as $i (null; [.]) | tojson | length").expect("compiles");
        assert_eq!(evaluate(&program.filter, &Value::Null, budget), Ok(vec![json!(800_004)]));
        let error = stopped("[recurse([.])] | length", Budget { steps: 1_000_000, ..budget });
        assert_eq!(error, "ran out of its budget of 1000000 evaluation steps");
        // A string is one step however deep the JSON in it: `fromjson` refuses deep nesting.
        let program = Program::compile(r#"("[" * 3000000) + ("]" * 3000000) | fromjson"#).expect("compiles");
        let error = program.run(&Value::Null).expect_err("too deep");
        assert!(error.starts_with("cannot parse") && error.contains("recursion limit exceeded"), "{error}");
        let program = Program::compile("[fromjson]").expect("compiles");
        assert_eq!(program.one(&json!(r#"[1, {"a": 2}] 3"#)), Ok(json!([[1, {"a": 2}], 3])));
        assert!(Program::compile("fromjson").expect("compiles").run(&json!("{")).is_err());
        assert!(Program::compile("fromjson").expect("compiles").run(&json!(1)).is_err());
    }

    #[test]
    fn deep_values_are_refused_as_outputs() {
        let program = Program::compile("reduce range(1000) as $i (0; [.])").expect("compiles");
        let error = program.run(&Value::Null).expect_err("too deep");
        assert_eq!(error, format!("its output nests deeper than {MAX_OUTPUT_DEPTH} levels"));
        let program = Program::compile("reduce range(64) as $i (0; [.]) | flatten").expect("compiles");
        assert_eq!(program.one(&Value::Null), Ok(json!([0])));
    }

    #[test]
    fn the_environment_is_not_readable_and_debug_is_silent() {
        let error = Program::compile("env").expect_err("no env");
        assert!(error.contains("undefined filter env/0"), "{error}");
        assert_eq!(Program::compile("debug | . + 1").expect("compiles").one(&json!(1)), Ok(json!(2)));
        assert_eq!(Program::compile("[range(0; 10; 3)]").expect("compiles").one(&Value::Null), Ok(json!([0, 3, 6, 9])));
        assert_eq!(Program::compile("[range(5; 0; -2)]").expect("compiles").one(&Value::Null), Ok(json!([5, 3, 1])));
        assert_eq!(Program::compile("[range(3)]").expect("compiles").one(&Value::Null), Ok(json!([0, 1, 2])));
    }

    #[test]
    fn truthiness_follows_jq() {
        let program = Program::compile(".x").expect("compiles");
        assert!(program.test_in(&json!({"x": 0}), Allowance::whole(Budget::DEFAULT)).expect("runs"));
        assert!(!program.test_in(&json!({"x": null}), Allowance::whole(Budget::DEFAULT)).expect("runs"));
        assert!(!program.test_in(&json!({"x": false}), Allowance::whole(Budget::DEFAULT)).expect("runs"));
        assert!(
            !Program::compile("empty")
                .expect("compiles")
                .test_in(&Value::Null, Allowance::whole(Budget::DEFAULT))
                .expect("runs")
        );
    }

    #[test]
    fn templates_fill_placeholders() {
        let template = Template::compile("Make a {{ .input.kind }} sandwich for {{ .input.n }}").expect("compiles");
        assert_eq!(
            template
                .render_in(&json!({"input": {"kind": "classic", "n": 2}}), Allowance::whole(Budget::DEFAULT))
                .expect("renders"),
            "Make a classic sandwich for 2"
        );
        assert!(Template::compile("{{ .a ").is_err());
        assert!(Template::compile("{{ nope }}").is_err());
    }
}
