//! `iotblast config check|print|default`.

use std::path::Path;

use crate::config::flags::ConfigCommand;
use crate::config::{layers, render};
use crate::error::{ConfigError, Error};
use crate::output;

/// Runs one `config` subcommand.
pub fn run(command: ConfigCommand) -> Result<(), Error> {
    match command {
        ConfigCommand::Check { file } => check(&file),
        ConfigCommand::Print { config } => {
            let (settings, warnings) = layers::load(config.as_deref(), std::env::vars(), &[])?;
            for w in warnings {
                output::err(format_args!("iotblast: warn: {w}"));
            }
            output::out_raw(&settings.to_yaml())
        }
        ConfigCommand::Default => output::out_raw(&render::default_yaml_commented()),
    }
}

/// Validates `file` over the defaults (without the environment), librdkafka's own
/// checks of the producer properties included.
fn check(file: &Path) -> Result<(), Error> {
    let name = file.display().to_string();
    let checked = layers::load(Some(file), std::iter::empty(), &[]).and_then(|(s, _)| {
        s.validate()?;
        s.kafka.check_with_librdkafka()
    });
    match checked {
        Ok(()) => {
            output::err(format_args!("{name}: ok"));
            Ok(())
        }
        // Errors about the file itself already name it.
        Err(e) if e.key == name => Err(e.into()),
        Err(e) => Err(ConfigError::new(name, e.to_string()).into()),
    }
}
