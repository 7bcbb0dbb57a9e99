//! The model: any OpenAI-compatible endpoint (OpenAI, Azure, vLLM, Ollama,
//! llama.cpp) through async-openai, whose client retries 429, 5xx and
//! connection errors with backoff and honours `Retry-After`. The model only
//! investigates and proposes; the policy gate decides.

pub mod schema;
pub mod tools;

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestAssistantMessageContentPart, ChatCompletionRequestDeveloperMessageContent, ChatCompletionRequestDeveloperMessageContentPart,
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessageContent, ChatCompletionRequestSystemMessageContentPart, ChatCompletionRequestToolMessageContent,
    ChatCompletionRequestToolMessageContentPart, ChatCompletionRequestUserMessageContent, ChatCompletionRequestUserMessageContentPart,
};

use crate::redact::redact;

/// What AGENTS.md's `model:` block says (all optional).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelSpec {
    pub base_url: Option<String>,
    pub name: Option<String>,
    pub api_key_env: Option<String>,
    pub temperature: Option<f32>,
    pub timeout: Option<Duration>,
    pub max_turns: Option<u32>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub deadline: Option<Duration>,
}

/// A model nightshift may call, with the caps of one investigation.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub base_url: String,
    pub name: String,
    pub api_key: String,
    pub temperature: Option<f32>,
    /// Per request.
    pub timeout: Duration,
    pub max_turns: u32,
    /// Prompt plus completion tokens for one incident.
    pub max_tokens: u32,
    /// The longest answer one request may produce.
    pub max_completion_tokens: u32,
    /// Wall clock for one investigation.
    pub deadline: Duration,
}

/// The model is on when AGENTS.md declares one or OPENAI_BASE_URL / OPENAI_API_KEY is set.
pub fn resolve(spec: Option<&ModelSpec>, env: impl Fn(&str) -> Option<String>) -> Option<ModelConfig> {
    let env_base = env("OPENAI_BASE_URL");
    let env_key = env("OPENAI_API_KEY");
    if spec.is_none() && env_base.is_none() && env_key.is_none() {
        return None;
    }
    let spec = spec.cloned().unwrap_or_default();
    let api_key = spec.api_key_env.as_deref().and_then(&env).or(env_key).unwrap_or_default();
    Some(ModelConfig {
        base_url: spec.base_url.or(env_base).unwrap_or_else(|| "https://api.openai.com/v1".into()),
        name: spec.name.or_else(|| env("OPENAI_MODEL")).unwrap_or_else(|| "gpt-4o-mini".into()),
        api_key,
        temperature: spec.temperature,
        timeout: spec.timeout.unwrap_or(Duration::from_secs(60)),
        max_turns: spec.max_turns.unwrap_or(8),
        max_tokens: spec.max_tokens.unwrap_or(20_000),
        max_completion_tokens: spec.max_completion_tokens.unwrap_or(1024),
        deadline: spec.deadline.unwrap_or(Duration::from_secs(300)),
    })
}

impl ModelConfig {
    pub fn client(&self) -> Result<Client<OpenAIConfig>, String> {
        let http = reqwest::Client::builder().timeout(self.timeout).build().map_err(|e| format!("cannot build the model's HTTP client: {e}"))?;
        let config = OpenAIConfig::new().with_api_base(self.base_url.trim_end_matches('/')).with_api_key(self.api_key.clone());
        Ok(Client::with_config(config).with_http_client(http))
    }
}

/// A message as it may leave for the model: the text of its content, every
/// part of it, with secrets redacted. The one place a request's messages
/// pass before they are sent, whatever built them (prompts, evidence, tool
/// results, the model's own earlier answers).
pub fn redacted(mut message: ChatCompletionRequestMessage) -> ChatCompletionRequestMessage {
    let text = |t: &mut String| *t = redact(t);
    match &mut message {
        ChatCompletionRequestMessage::Developer(m) => match &mut m.content {
            ChatCompletionRequestDeveloperMessageContent::Text(t) => text(t),
            ChatCompletionRequestDeveloperMessageContent::Array(parts) => parts.iter_mut().for_each(|p| match p {
                ChatCompletionRequestDeveloperMessageContentPart::Text(p) => text(&mut p.text),
            }),
        },
        ChatCompletionRequestMessage::System(m) => match &mut m.content {
            ChatCompletionRequestSystemMessageContent::Text(t) => text(t),
            ChatCompletionRequestSystemMessageContent::Array(parts) => parts.iter_mut().for_each(|p| match p {
                ChatCompletionRequestSystemMessageContentPart::Text(p) => text(&mut p.text),
            }),
        },
        ChatCompletionRequestMessage::User(m) => match &mut m.content {
            ChatCompletionRequestUserMessageContent::Text(t) => text(t),
            ChatCompletionRequestUserMessageContent::Array(parts) => parts.iter_mut().for_each(|p| match p {
                ChatCompletionRequestUserMessageContentPart::Text(p) => text(&mut p.text),
                // Media parts carry no text nightshift wrote; it sends none.
                ChatCompletionRequestUserMessageContentPart::ImageUrl(_) | ChatCompletionRequestUserMessageContentPart::InputAudio(_) | ChatCompletionRequestUserMessageContentPart::File(_) => {}
            }),
        },
        ChatCompletionRequestMessage::Assistant(m) => match &mut m.content {
            Some(ChatCompletionRequestAssistantMessageContent::Text(t)) => text(t),
            Some(ChatCompletionRequestAssistantMessageContent::Array(parts)) => parts.iter_mut().for_each(|p| match p {
                ChatCompletionRequestAssistantMessageContentPart::Text(p) => text(&mut p.text),
                ChatCompletionRequestAssistantMessageContentPart::Refusal(p) => text(&mut p.refusal),
            }),
            None => {}
        },
        ChatCompletionRequestMessage::Tool(m) => match &mut m.content {
            ChatCompletionRequestToolMessageContent::Text(t) => text(t),
            ChatCompletionRequestToolMessageContent::Array(parts) => parts.iter_mut().for_each(|p| match p {
                ChatCompletionRequestToolMessageContentPart::Text(p) => text(&mut p.text),
            }),
        },
        ChatCompletionRequestMessage::Function(m) => {
            if let Some(t) = &mut m.content {
                text(t);
            }
        }
    }
    message
}
