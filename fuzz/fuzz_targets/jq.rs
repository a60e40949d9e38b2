//! A jq program and a `{{ jq }}` template: compiling must succeed or say what is wrong, never
//! panic, overflow the stack or hang. Programs are compiled only, not run.

#![no_main]

use libfuzzer_sys::fuzz_target;
use orgata::jq::{Program, Template};

fuzz_target!(|data: &[u8]| {
    let Ok(code) = std::str::from_utf8(data) else { return };
    orgata_fuzz::on_worker_stack(|| {
        match Program::compile(code) {
            Ok(program) => assert_eq!(program.code(), code),
            Err(error) => assert!(!error.is_empty(), "a program was refused without a reason"),
        }
        if let Err(error) = Template::compile(code) {
            assert!(!error.is_empty(), "a template was refused without a reason");
        }
    });
});
