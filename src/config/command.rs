//! `iotblast config check|print|default`, and the shell integration: `completions`
//! and `man`, generated from the same clap command as `--help`.

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

/// `iotblast completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<(), Error> {
    let mut out = Vec::new();
    clap_complete::generate(
        shell,
        &mut crate::config::flags::command(),
        "iotblast",
        &mut out,
    );
    output::out_raw(&String::from_utf8_lossy(&out))
}

/// `iotblast man`: the man page, in roff, on stdout.
pub fn man() -> Result<(), Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(crate::config::flags::command())
        .render(&mut out)
        .map_err(Error::Output)?;
    output::out_raw(&String::from_utf8_lossy(&out))
}
