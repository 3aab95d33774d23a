//! One model implementation for every target: a Llama-family transformer (Llama, Qwen2) with PEFT
//! LoRA adapters, written once over burn's `Backend` so the same code runs on `NdArray` (CPU and
//! edge wasm), `Wgpu` (Vulkan, WebGPU in a tab), `Cuda`, and under `Autodiff` for fine-tuning.
//!
//! Inputs are Hugging Face's own formats — `config.json`, safetensors (single or sharded),
//! `tokenizer.json`, PEFT adapter folders — or a GGUF file, and every problem with them is a [`ModelError`]
//! naming the file and field or tensor at fault.

#[cfg(all(target_arch = "wasm32", feature = "wgpu"))]
pub mod browser;
mod chat;
mod config;
mod error;
mod generate;
mod gguf_model;
mod gguf_tokenizer;
mod kv;
mod lora;
mod model;
mod rope;
#[cfg(not(target_arch = "wasm32"))]
mod source;
mod tokenizer;
mod weights;

pub use chat::{ChatMessage, ChatTemplate};
pub use config::{Architecture, Llama3Scaling, ModelConfig};
pub use error::ModelError;
pub use generate::{Generation, Sampler, SamplingParams, StopReason, generate};
pub use gguf_tokenizer::SpecialTokens;
pub use kv::{PagedKv, SeqKv};
pub use lora::{AdapterWeights, LoraConfig, LoraPair, Target, TargetDims};
pub use model::{Adapter, Adapters, DenseLora, KvCache, Model, Step};
#[cfg(not(target_arch = "wasm32"))]
pub use source::ModelSource;
pub use tokenizer::Tokenizer;
pub use tributary_quant::QuantBackend;
pub use tributary_sgmv::{PoolOptions, SgmvBackend};
pub use weights::WeightFiles;
