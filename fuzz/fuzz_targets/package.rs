//! A package document, read as YAML and as JSON, then validated: loading and validation must
//! answer with problems, never panic, overflow the stack or hang.

#![no_main]

use libfuzzer_sys::fuzz_target;
use orgata::package::load::Format;
use orgata::package::{load_document, validate};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    orgata_fuzz::on_worker_stack(|| {
        for (file, format) in [("fuzz.yaml", Format::Yaml), ("fuzz.json", Format::Json)] {
            let problems = match load_document(file, text, format) {
                Ok(loaded) => match validate(&loaded) {
                    Ok(_) => continue,
                    Err(problems) => problems,
                },
                Err(problems) => problems,
            };
            assert!(!problems.is_empty(), "a package was refused without a problem");
            for problem in problems {
                assert!(!problem.message.is_empty(), "a problem without a message: {problem:?}");
                let _ = problem.to_string();
            }
        }
    });
});
