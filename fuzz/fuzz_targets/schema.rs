//! A form: the input is a JSON schema followed by a JSON instance (`{schema} {instance}`; with
//! no instance the schema checks itself). Compiling the schema and checking the instance must
//! answer, never panic, overflow the stack or hang.

#![no_main]

use libfuzzer_sys::fuzz_target;
use orgata::schema;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    orgata_fuzz::on_worker_stack(|| {
        let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let Some(Ok(form)) = values.next() else { return };
        let instance = match values.next() {
            None => form.clone(),
            Some(Ok(instance)) => instance,
            Some(Err(_)) => return,
        };
        let Ok(validator) = schema::compile(&form) else { return };
        let errors = schema::check(&validator, &instance);
        for error in &errors {
            assert!(!error.message.is_empty(), "an error without a message: {error:?}");
            let _ = error.to_string();
        }
        assert_eq!(schema::validate(&validator, &instance).err().unwrap_or_default(), errors);
    });
});
