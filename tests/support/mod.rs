pub mod agent_sdk;
pub mod bot_venv;
pub mod loopback;
pub mod real_claude;
pub mod stand_in_api;
pub mod stand_in_discord;
pub mod stand_in_telegram;
pub mod testenv;
