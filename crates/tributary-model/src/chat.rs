//! Chat templates as Hugging Face ships them: a Jinja template in `chat_template.jinja` or in
//! `tokenizer_config.json`'s `chat_template`, rendered with minijinja set up the way transformers'
//! `apply_chat_template` sets up Jinja2 (trim_blocks, lstrip_blocks, loop controls,
//! `raise_exception`, Python's string methods, `tojson` as Python's `json.dumps` writes it), so a
//! prompt built here is the one the model was fine-tuned on.

use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Serde, Value};
use minijinja::{Environment, Error as JinjaError, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, read_file};

/// One message of a conversation. Field order is the order `tojson` writes them in, as Python
/// keeps a dict's insertion order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    file: PathBuf,
    bos_token: String,
    eos_token: String,
}

const NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles `source` now, so a broken template is reported when the model loads rather than
    /// at the first chat request. `file` only names the source in errors.
    pub fn new(
        file: &Path,
        source: &str,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self, ModelError> {
        let mut env = Environment::new();
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        // Jinja2's default: an undefined value renders as empty and is falsy.
        env.set_undefined_behavior(UndefinedBehavior::Lenient);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_filter("tojson", tojson);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| template_error(file, &e))?;
        Ok(Self {
            env,
            file: file.to_path_buf(),
            bos_token: bos_token.to_owned(),
            eos_token: eos_token.to_owned(),
        })
    }

    /// The template of a Hugging Face model folder: `chat_template.jinja` (what transformers 5
    /// writes), else `tokenizer_config.json`'s `chat_template` (a string, or a list of named
    /// templates of which `default` is used). `None` when the folder has neither.
    pub fn from_model_dir(dir: &Path) -> Result<Option<Self>, ModelError> {
        let config_file = dir.join("tokenizer_config.json");
        let config: serde_json::Value = if config_file.exists() {
            serde_json::from_slice(&read_file(&config_file)?).map_err(|source| {
                ModelError::Json {
                    file: config_file.clone(),
                    source,
                }
            })?
        } else {
            serde_json::Value::Null
        };
        let token = |field: &str| -> Result<String, ModelError> {
            match &config[field] {
                serde_json::Value::Null => Ok(String::new()),
                serde_json::Value::String(s) => Ok(s.clone()),
                // An AddedToken written out as an object.
                v => v["content"].as_str().map(str::to_owned).ok_or_else(|| {
                    ModelError::field(&config_file, field, "expected a string or {content}")
                }),
            }
        };
        let (bos, eos) = (token("bos_token")?, token("eos_token")?);
        let jinja_file = dir.join("chat_template.jinja");
        if jinja_file.exists() {
            let bytes = read_file(&jinja_file)?;
            let source = String::from_utf8(bytes)
                .map_err(|_| template_error_msg(&jinja_file, "not valid UTF-8"))?;
            return Self::new(&jinja_file, &source, &bos, &eos).map(Some);
        }
        let source = match &config["chat_template"] {
            serde_json::Value::Null => return Ok(None),
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(named) => named
                .iter()
                .find(|t| t["name"] == "default")
                .and_then(|t| t["template"].as_str())
                .map(str::to_owned)
                .ok_or_else(|| {
                    ModelError::field(&config_file, "chat_template", "no template named `default`")
                })?,
            _ => {
                return Err(ModelError::field(
                    &config_file,
                    "chat_template",
                    "expected a string or a list of {name, template}",
                ));
            }
        };
        Self::new(&config_file, &source, &bos, &eos).map(Some)
    }

    /// The prompt for `messages`; with `add_generation_prompt`, ending where the assistant's
    /// reply begins.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, ModelError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| template_error(&self.file, &e))?;
        template
            .render(minijinja::context! {
                messages => Value::from(Serde(messages)),
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| template_error(&self.file, &e))
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }
}

fn template_error(file: &Path, e: &JinjaError) -> ModelError {
    // The message a template raised is the one a user needs; minijinja adds where it happened.
    let mut reason = e.to_string();
    if let Some(detail) = e.detail()
        && e.kind() == ErrorKind::InvalidOperation
    {
        reason = format!("{detail} ({reason})");
    }
    template_error_msg(file, &reason)
}

fn template_error_msg(file: &Path, reason: &str) -> ModelError {
    ModelError::ChatTemplate {
        file: file.to_path_buf(),
        reason: reason.to_owned(),
    }
}

/// transformers' `raise_exception(message)`: templates use it to refuse a conversation.
fn raise_exception(message: String) -> Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=indent)`, so
/// `", "` and `": "` between items and no HTML escaping (minijinja's own filter escapes `<`).
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyJson::new(indent));
    value
        .serialize(&mut ser)
        .map_err(|e| JinjaError::new(ErrorKind::BadSerialization, e.to_string()))?;
    let text = String::from_utf8(out).expect("serde_json writes UTF-8");
    Ok(Value::from_safe_string(text))
}

/// Python `json.dumps` layout: separators `", "`/`": "` on one line, `","`/`": "` with an indent.
#[derive(Debug)]
struct PyJson {
    indent: Option<usize>,
    depth: usize,
    has_value: bool,
}

impl PyJson {
    fn new(indent: Option<usize>) -> Self {
        Self {
            indent,
            depth: 0,
            has_value: false,
        }
    }

    fn newline<W: ?Sized + std::io::Write>(&self, w: &mut W) -> std::io::Result<()> {
        if let Some(n) = self.indent {
            w.write_all(b"\n")?;
            for _ in 0..n * self.depth {
                w.write_all(b" ")?;
            }
        }
        Ok(())
    }

    fn open<W: ?Sized + std::io::Write>(&mut self, w: &mut W, c: &[u8]) -> std::io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(c)
    }

    fn close<W: ?Sized + std::io::Write>(&mut self, w: &mut W, c: &[u8]) -> std::io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.newline(w)?;
        }
        self.has_value = true;
        w.write_all(c)
    }

    fn item<W: ?Sized + std::io::Write>(&self, w: &mut W, first: bool) -> std::io::Result<()> {
        if !first {
            w.write_all(if self.indent.is_some() { b"," } else { b", " })?;
        }
        self.newline(w)
    }
}

impl serde_json::ser::Formatter for PyJson {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}
