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

use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use jaq_core::data::{DataT, HasLut};
use jaq_core::load::{self, Arena, File, Loader};
use jaq_core::native::{Fun, v};
use jaq_core::{Compiler, Ctx, Exn, ValXs, Vars, compile};
use jaq_json::{Num, Val};
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

static BUDGET_STEPS: AtomicU64 = AtomicU64::new(Budget::DEFAULT.steps);
static BUDGET_MILLIS: AtomicU64 = AtomicU64::new(Budget::DEFAULT.time.as_millis() as u64);
static BUDGET_BYTES: AtomicUsize = AtomicUsize::new(Budget::DEFAULT.bytes);

/// Sets the budget of every evaluation in this process from now on (the server's
/// `--jq-max-steps`, at most [`MAX_STEPS`], and `--jq-timeout-ms`).
pub fn set_budget(budget: Budget) {
    BUDGET_STEPS.store(budget.steps.clamp(1, MAX_STEPS), Ordering::Relaxed);
    BUDGET_MILLIS.store(u64::try_from(budget.time.as_millis()).unwrap_or(u64::MAX).max(1), Ordering::Relaxed);
    BUDGET_BYTES.store(budget.bytes.max(1), Ordering::Relaxed);
}

/// The budget evaluations run under.
pub fn budget() -> Budget {
    Budget {
        steps: BUDGET_STEPS.load(Ordering::Relaxed),
        time: Duration::from_millis(BUDGET_MILLIS.load(Ordering::Relaxed)),
        bytes: BUDGET_BYTES.load(Ordering::Relaxed),
    }
}

thread_local! {
    /// Bytes allocated minus bytes freed on this thread (see [`CountingAllocator`]).
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

/// The process's allocator: the system's, counting per thread the bytes allocated and freed, so
/// that an evaluation knows how much its values hold. jaq has no hook on the size of what a
/// program builds (`reduce range(29) as $i ("x"; . + .)` reaches 1 GiB in a few dozen steps),
/// and the evaluator thread allocates little besides the program's values. Installed in
/// `lib.rs`; a thread-local add per allocation is all it costs.
pub struct CountingAllocator;

#[inline]
fn count(delta: isize) {
    // `try_with`: during thread teardown the counter may be gone; nothing to count then.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get().wrapping_add(delta)));
}

fn live_bytes() -> isize {
    LIVE_BYTES.try_with(Cell::get).unwrap_or(0)
}

// SAFETY: every call is forwarded unchanged to `System`; the counting touches only a
// thread-local `Cell` with a const initialiser (no allocation, no destructor).
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let pointer = unsafe { std::alloc::System.alloc(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let pointer = unsafe { std::alloc::System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            count(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: std::alloc::Layout) {
        count(-(layout.size() as isize));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { std::alloc::System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let moved = unsafe { std::alloc::System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

/// The data type programs run with: jaq's JSON values, and a [`Meter`] as global data.
pub struct Metered;

impl DataT for Metered {
    type V<'a> = Val;
    type Data<'a> = Meter<'a>;
}

/// The look-up table of a program, handed out only through the gauge.
#[derive(Clone)]
pub struct Meter<'a> {
    lut: &'a Lut,
    gauge: &'a Gauge,
}

impl<'a> HasLut<'a, Metered> for Meter<'a> {
    fn lut(&self) -> &'a Lut {
        self.gauge.step();
        self.lut
    }
}

/// Why an evaluation was stopped; the payload of its unwinding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Steps(u64),
    Time(Duration),
    Depth,
    Bytes(usize),
}

impl fmt::Display for Stop {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Steps(steps) => write!(formatter, "ran out of its budget of {steps} evaluation steps"),
            Stop::Time(time) => write!(formatter, "ran out of its time budget of {} ms", time.as_millis()),
            Stop::Bytes(bytes) => {
                write!(formatter, "built values larger than its budget of {} MiB", bytes.div_ceil(1 << 20))
            }
            Stop::Depth => {
                write!(formatter, "recursed too deeply (more than {} MiB of stack)", EVALUATION_STACK >> 20)
            }
        }
    }
}

/// Counts the steps of one evaluation and stops it when its budget is spent.
pub struct Gauge {
    steps: Cell<u64>,
    budget: Budget,
    deadline: Instant,
    /// The lowest stack address the evaluation may reach (stacks grow down).
    stack_floor: usize,
    /// [`live_bytes`] when the evaluation began.
    bytes_at_start: isize,
}

impl Gauge {
    fn new(budget: Budget, stack_base: usize) -> Gauge {
        Gauge {
            steps: Cell::new(0),
            budget,
            deadline: Instant::now() + budget.time,
            stack_floor: stack_base.saturating_sub(EVALUATION_STACK),
            bytes_at_start: live_bytes(),
        }
    }

    #[inline]
    fn step(&self) {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        if steps > self.budget.steps {
            stop(Stop::Steps(self.budget.steps));
        }
        if steps.is_multiple_of(256) && Instant::now() > self.deadline {
            stop(Stop::Time(self.budget.time));
        }
        if stack_address() < self.stack_floor {
            stop(Stop::Depth);
        }
        // Between two steps one native operation may allocate much at once (string
        // repetition), so the budget can be overshot by that one operation, never more.
        if live_bytes().wrapping_sub(self.bytes_at_start) > self.budget.bytes as isize {
            stop(Stop::Bytes(self.budget.bytes));
        }
    }
}

/// Unwinds the evaluation. `resume_unwind` does not run the panic hook, so nothing is printed;
/// the evaluator thread catches it (`serve_evaluations`). jaq's evaluation state is discarded
/// whole, never observed after. (Built with `panic = "abort"`, this would end the process.)
fn stop(reason: Stop) -> ! {
    panic::resume_unwind(Box::new(reason))
}

/// An address in the current stack frame.
#[inline(always)]
fn stack_address() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// The native filters programs may call: jaq's, with `range` metered, `fromjson` bounded, `env`
/// removed and `debug`/`stderr` silent.
fn natives() -> impl Iterator<Item = Fun<Metered>> {
    let silent =
        |name: &'static str| -> Fun<Metered> { jaq_core::native::run((name, v(0), |_| Box::new(std::iter::empty()))) };
    jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs())
        .filter(|(name, arguments, _)| {
            !matches!(
                (*name, arguments.len()),
                ("range", 3) | ("fromjson", 0) | ("env", 0) | ("debug_empty", 0) | ("stderr_empty", 0)
            )
        })
        .chain([
            jaq_core::native::run::<Metered>(("range", v(3), metered_range)),
            jaq_core::native::run::<Metered>(("fromjson", v(0), bounded_fromjson)),
            silent("debug_empty"),
            silent("stderr_empty"),
        ])
}

/// `fromjson`: every JSON value in the input string, parsed by `serde_json`, which refuses
/// nesting deeper than 128 levels (jaq's parser recurses without a limit).
fn bounded_fromjson(cv: jaq_core::Cv<'_, Metered>) -> ValXs<'_, Val> {
    let text = match &cv.1 {
        Val::TStr(bytes) => bytes.clone(),
        other => {
            let error = jaq_core::Error::typ(other.clone(), "string");
            return Box::new(std::iter::once(Err(Exn::from(error))));
        }
    };
    let mut values = serde_json::Deserializer::from_slice(&text).into_iter::<Value>();
    let mut failed = false;
    let parsed: Vec<_> = std::iter::from_fn(|| {
        if failed {
            return None;
        }
        match values.next()? {
            Ok(value) => Some(Ok(to_val(&value))),
            Err(error) => {
                failed = true;
                let error = jaq_core::Error::str(format_args!("cannot parse {} as JSON: {error}", cv.1));
                Some(Err(Exn::from(error)))
            }
        }
    })
    .collect();
    Box::new(parsed.into_iter())
}

/// `range($from; $upto; $by)`, one step per output: `$from`, `$from + $by`, … while short of
/// `$upto` in the direction of `$by` (for a zero `$by`, while different from `$upto`).
fn metered_range(mut cv: jaq_core::Cv<'_, Metered>) -> ValXs<'_, Val> {
    let gauge = cv.0.data().gauge;
    let by = cv.0.pop_var();
    let upto = cv.0.pop_var();
    let from = cv.0.pop_var();
    let direction = by.partial_cmp(&Val::from(0isize)).unwrap_or(std::cmp::Ordering::Equal);
    let mut next = Some(Ok(from));
    Box::new(std::iter::from_fn(move || {
        gauge.step();
        match next.take()? {
            Ok(current) => {
                let going = match direction {
                    std::cmp::Ordering::Greater => current < upto,
                    std::cmp::Ordering::Less => current > upto,
                    std::cmp::Ordering::Equal => current != upto,
                };
                if !going {
                    return None;
                }
                next = Some((current.clone() + by.clone()).map_err(Exn::from));
                Some(Ok(current))
            }
            Err(error) => Some(Err(error)),
        }
    }))
}

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

    /// Every output of the program over `input`, within the process's [`Budget`].
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, String> {
        evaluate(&self.filter, input, budget())
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

/// One evaluation handed to an evaluator thread.
struct Job {
    filter: Arc<Filter>,
    input: Value,
    budget: Budget,
    /// The outcome, and whether the evaluator may take another job.
    reply: mpsc::SyncSender<(Result<Vec<Value>, String>, bool)>,
}

/// An idle evaluator thread: where to send its next job, and its stack size.
struct Evaluator {
    jobs: mpsc::Sender<Job>,
    stack: usize,
}

/// Idle evaluator threads, each waiting for its next job.
static IDLE: Mutex<Vec<Evaluator>> = Mutex::new(Vec::new());

/// Runs `filter` over `input` on an evaluator thread, under `budget`, and waits for the outcome.
/// The caller blocks for at most about the budget's time: the evaluation stops itself then.
fn evaluate(filter: &Arc<Filter>, input: &Value, budget: Budget) -> Result<Vec<Value>, String> {
    let stack = stack_for(budget);
    let (reply, answer) = mpsc::sync_channel(1);
    let mut job = Job { filter: filter.clone(), input: input.clone(), budget, reply };
    let evaluator = loop {
        let idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let evaluator = match idle {
            // One with too small a stack for this budget ends as it is dropped.
            Some(evaluator) if evaluator.stack < stack => continue,
            Some(evaluator) => evaluator,
            None => spawn_evaluator(stack)?,
        };
        match evaluator.jobs.send(job) {
            Ok(()) => break evaluator,
            // That evaluator has stopped; try another.
            Err(mpsc::SendError(returned)) => job = returned,
        }
    };
    let (outcome, reusable) = answer.recv().map_err(|_| "the jq evaluator stopped unexpectedly".to_owned())?;
    if reusable {
        let mut idle = IDLE.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_EVALUATORS {
            idle.push(evaluator);
        }
    }
    outcome
}

fn spawn_evaluator(stack: usize) -> Result<Evaluator, String> {
    let (jobs, receiver) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("orgata-jq".to_owned())
        .stack_size(stack)
        .spawn(move || serve_evaluations(&receiver, stack))
        .map_err(|error| format!("cannot start a jq evaluator thread with a {} MiB stack: {error}", stack >> 20))?;
    Ok(Evaluator { jobs, stack })
}

/// An evaluator thread: runs jobs until it is dropped from the pool, or until a job was stopped,
/// panicked or ran many steps (ending the thread gives its stack pages back).
fn serve_evaluations(jobs: &mpsc::Receiver<Job>, stack: usize) {
    let stack_base = stack_address();
    while let Ok(Job { filter, input, budget, reply }) = jobs.recv() {
        if stack_for(budget) > stack {
            let _ = reply.send((Err("the jq evaluator's stack is too small for the budget".to_owned()), false));
            return;
        }
        let gauge = Gauge::new(budget, stack_base);
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_metered(&filter, &input, &gauge)));
        let (outcome, reusable) = match outcome {
            Ok(outcome) => (outcome, gauge.steps.get() <= RETIRE_AFTER_STEPS),
            Err(payload) => match payload.downcast::<Stop>() {
                Ok(stop) => (Err(stop.to_string()), false),
                Err(payload) => {
                    let message = payload
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    (Err(format!("the jq evaluator failed: {message}")), false)
                }
            },
        };
        drop((filter, input));
        // The caller may have gone; then the outcome is nobody's.
        let _ = reply.send((outcome, reusable));
        if !reusable {
            return;
        }
    }
}

/// The evaluation itself, on an evaluator thread; `gauge` may unwind out of it.
fn run_metered(filter: &Filter, input: &Value, gauge: &Gauge) -> Result<Vec<Value>, String> {
    let context = Ctx::<Metered>::new(Meter { lut: &filter.lut, gauge }, Vars::new([]));
    let mut outputs = Vec::new();
    for output in filter.id.run((context, to_val(input))) {
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
        outputs.push(from_val(value, 0)?);
    }
    Ok(outputs)
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

/// `value` as JSON; `depth` is how many arrays and objects enclose it.
fn from_val(value: Val, depth: usize) -> Result<Value, String> {
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

    fn stopped(code: &str, budget: Budget) -> String {
        let program = Program::compile(code).expect("compiles");
        let started = Instant::now();
        let error = evaluate(&program.filter, &Value::Null, budget).expect_err("stopped");
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
