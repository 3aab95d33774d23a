//! Chat templates rendered here against what transformers' `apply_chat_template` rendered for the
//! same templates and conversations (tests/fixtures/chat/cases.json, written by
//! reference/chat_reference.py).

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde::Deserialize;
use tributary_model::{ChatMessage, ChatTemplate, ModelError};

#[derive(Deserialize)]
struct Case {
    template: String,
    add_generation_prompt: bool,
    messages: Vec<ChatMessage>,
    expected: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Cases {
    bos_token: String,
    eos_token: String,
    templates: std::collections::BTreeMap<String, String>,
    cases: Vec<Case>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn renders_as_transformers_does() {
    let file = fixtures().join("chat/cases.json");
    let doc: Cases = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(doc.cases.len() >= 20);
    for (i, case) in doc.cases.iter().enumerate() {
        let source = &doc.templates[&case.template];
        let template = ChatTemplate::new(&file, source, &doc.bos_token, &doc.eos_token).unwrap();
        let got = template.render(&case.messages, case.add_generation_prompt);
        match (&case.expected, &case.error, got) {
            (Some(want), None, Ok(got)) => {
                assert_eq!(&got, want, "case {i} ({})", case.template)
            }
            (None, Some(want), Err(ModelError::ChatTemplate { reason, .. })) => {
                assert!(reason.contains(want), "case {i}: `{reason}` lacks `{want}`")
            }
            (_, _, got) => panic!("case {i} ({}): got {got:?}", case.template),
        }
    }
}

#[test]
fn loads_the_template_transformers_saved() {
    let dir = fixtures().join("llama-gqa");
    let template = ChatTemplate::from_model_dir(&dir)
        .unwrap()
        .expect("a template");
    assert_eq!(template.eos_token(), "<|endoftext|>");
    let text = template
        .render(
            &[ChatMessage {
                role: "user".into(),
                content: "hi".into(),
            }],
            true,
        )
        .unwrap();
    assert!(text.ends_with("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"));
    // A folder without one has none.
    assert!(
        ChatTemplate::from_model_dir(&fixtures().join("qwen2-bias"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn broken_templates_are_typed_errors_naming_the_file() {
    let file = Path::new("t.jinja");
    let err = ChatTemplate::new(file, "{% for m in messages %}", "", "").unwrap_err();
    assert!(
        matches!(&err, ModelError::ChatTemplate { file: f, .. } if f == file),
        "{err}"
    );
    let dir = tempdir();
    std::fs::write(dir.join("tokenizer_config.json"), r#"{"chat_template": 7}"#).unwrap();
    let err = ChatTemplate::from_model_dir(&dir).map(|_| ()).unwrap_err();
    assert!(
        matches!(&err, ModelError::Field { field, .. } if field == "chat_template"),
        "{err}"
    );
    std::fs::write(dir.join("tokenizer_config.json"), "{").unwrap();
    assert!(matches!(
        ChatTemplate::from_model_dir(&dir).map(|_| ()).unwrap_err(),
        ModelError::Json { .. }
    ));
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tributary-chat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

proptest! {
    /// Any template text either compiles or is refused with a typed error; rendering what
    /// compiles never panics.
    #[test]
    fn arbitrary_templates_never_panic(source in "[{}%# a-z'()+.|\\[\\]=\n]{0,60}") {
        if let Ok(t) = ChatTemplate::new(Path::new("p.jinja"), &source, "<s>", "</s>") {
            let _ = t.render(&[ChatMessage { role: "user".into(), content: "x".into() }], true);
        }
    }
}
