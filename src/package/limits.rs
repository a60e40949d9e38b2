//! What one package may hold: steps per playbook, jq programs in all, and how deep playbooks
//! may nest through `playbook` steps. Checked at deploy (the server's configuration sets the
//! numbers), after [`super::validate`]; each problem names where it is and what to change.

use std::collections::HashMap;

use super::{LoadedPackage, Package, Problem};

/// The most a package may hold; `orgata serve --max-…` flags set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Steps in one playbook.
    pub steps_per_playbook: usize,
    /// jq programs in the whole package (step programs, conditions, inputs, outputs and
    /// prompt placeholders, counted per step as the engine compiles them).
    pub programs: usize,
    /// Child executions below a started one: a chain `p0 → p1 → … → pN` nests N deep.
    pub nesting_depth: usize,
}

impl Limits {
    pub const DEFAULT: Limits = Limits { steps_per_playbook: 1_000, programs: 5_000, nesting_depth: 32 };
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::DEFAULT
    }
}

/// Every limit the (already validated) package exceeds.
pub fn check(loaded: &LoadedPackage, package: &Package, limits: &Limits) -> Vec<Problem> {
    let mut found: Vec<(String, String)> = Vec::new();
    let mut programs = 0usize;
    let operations: HashMap<&str, &super::Implementation> =
        package.operations.iter().map(|operation| (operation.name.as_str(), &operation.implementation)).collect();
    for (index, playbook) in package.playbooks.iter().enumerate() {
        if playbook.steps.len() > limits.steps_per_playbook {
            found.push((
                format!("/playbooks/{index}/steps"),
                format!(
                    "playbook `{}` has {} steps; a playbook may have at most {} (--max-steps-per-playbook); \
                     split it into playbooks that call each other",
                    playbook.name,
                    playbook.steps.len(),
                    limits.steps_per_playbook
                ),
            ));
        }
        programs += usize::from(playbook.output.is_some());
        for step in &playbook.steps {
            let operation = step.operation.as_deref().and_then(|name| operations.get(name).copied());
            let implementation = super::validate::effective(operation, &step.implementation);
            programs += usize::from(step.when.is_some())
                + step.next.iter().filter(|route| route.when.is_some()).count()
                + usize::from(step.input.is_some())
                + usize::from(implementation.program.is_some())
                + implementation.prompt.as_deref().map_or(0, placeholders);
        }
    }
    if programs > limits.programs {
        found.push((
            String::new(),
            format!(
                "the package holds {programs} jq programs (step programs, conditions, inputs, outputs and prompt \
                 placeholders); a package may hold at most {} (--max-programs-per-package)",
                limits.programs
            ),
        ));
    }
    found.extend(nesting(package, limits.nesting_depth));
    found
        .into_iter()
        .map(|(pointer, message)| {
            let (file, path) = loaded.sources.locate(&pointer);
            Problem { file, path, message }
        })
        .collect()
}

/// Prompt placeholders (`{{ … }}`), each compiled as a jq program.
fn placeholders(prompt: &str) -> usize {
    prompt.matches("{{").count()
}

/// How deep the calls below a playbook nest, and the call (step index, callee) that starts
/// the deepest chain.
type Height = (usize, Option<(usize, usize)>);

/// Playbooks whose calls nest deeper than `limit`, each reported at the step that starts the
/// too-deep chain, naming the chain. Only the outermost playbook of each too-deep chain is
/// reported (the ones it calls are named in its chain). Iterative, so a chain of any length
/// is checked without recursion; cycles are `validate`'s to report and are skipped here.
fn nesting(package: &Package, limit: usize) -> Vec<(String, String)> {
    let operation_playbook: HashMap<&str, &str> = package
        .operations
        .iter()
        .filter_map(|operation| Some((operation.name.as_str(), operation.implementation.playbook.as_deref()?)))
        .collect();
    let index: HashMap<&str, usize> =
        package.playbooks.iter().enumerate().map(|(at, playbook)| (playbook.name.as_str(), at)).collect();
    // For each playbook, the (step index, callee index) pairs of its `playbook` steps.
    let calls: Vec<Vec<(usize, usize)>> = package
        .playbooks
        .iter()
        .map(|playbook| {
            playbook
                .steps
                .iter()
                .enumerate()
                .filter_map(|(step_at, step)| {
                    let callee = step.implementation.playbook.as_deref().or_else(|| {
                        step.operation.as_deref().and_then(|operation| operation_playbook.get(operation).copied())
                    })?;
                    Some((step_at, *index.get(callee)?))
                })
                .collect()
        })
        .collect();
    // height[p]: how deep the deepest chain below p nests, and the call that starts it.
    let count = package.playbooks.len();
    let mut height: Vec<Option<Height>> = vec![None; count];
    let mut on_path = vec![false; count];
    for root in 0..count {
        if height[root].is_some() {
            continue;
        }
        // Post-order walk with an explicit stack of (playbook, next call to look at).
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        on_path[root] = true;
        while let Some(&mut (current, ref mut next)) = stack.last_mut() {
            if let Some(&(_, callee)) = calls[current].get(*next) {
                *next += 1;
                if height[callee].is_none() && !on_path[callee] {
                    on_path[callee] = true;
                    stack.push((callee, 0));
                }
                continue;
            }
            let deepest = calls[current]
                .iter()
                .filter_map(|&(step_at, callee)| Some((height[callee]?.0 + 1, Some((step_at, callee)))))
                .max_by_key(|(depth, _)| *depth)
                .unwrap_or((0, None));
            height[current] = Some(deepest);
            on_path[current] = false;
            stack.pop();
        }
    }
    let too_deep = |at: usize| height[at].is_some_and(|(depth, _)| depth > limit);
    let mut called_by_too_deep = vec![false; count];
    for caller in (0..count).filter(|&caller| too_deep(caller)) {
        for &(_, callee) in &calls[caller] {
            called_by_too_deep[callee] = true;
        }
    }
    let mut found = Vec::new();
    for at in (0..count).filter(|&at| too_deep(at) && !called_by_too_deep[at]) {
        let Some((depth, Some((step_at, _)))) = height[at] else { continue };
        let mut chain: Vec<&str> = vec![package.playbooks[at].name.as_str()];
        let mut current = at;
        while let Some((_, Some((_, callee)))) = height[current] {
            chain.push(package.playbooks[callee].name.as_str());
            current = callee;
        }
        let shown = if chain.len() > 8 {
            format!("{} → … → {}", chain[..4].join(" → "), chain[chain.len() - 3..].join(" → "))
        } else {
            chain.join(" → ")
        };
        found.push((
            format!("/playbooks/{at}/steps/{step_at}/playbook"),
            format!(
                "playbook `{}` nests playbooks {depth} deep ({shown}); playbooks may nest at most {limit} deep \
                 (--max-nesting-depth)",
                package.playbooks[at].name
            ),
        ));
    }
    found
}
