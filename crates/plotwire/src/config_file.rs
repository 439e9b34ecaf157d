//! `plotwire serve --config plotwire.toml`: every flag of `plotwire serve` can be set in
//! a TOML file, under its long name (`max-body-bytes = 1048576`, or `max_body_bytes`).
//!
//! Precedence: a flag on the command line, then its environment variable, then the file,
//! then the default. The file is applied by adding `--flag=value` for each setting whose
//! value would otherwise be the default, and parsing again: so clap checks a file's
//! values exactly as it checks flags, with the same messages.
//!
//! Values: strings, integers, floats and booleans as themselves; a list for a flag that
//! takes several values (`allow-websocket-origin = ["a.example:80", "b.example:80"]`); a
//! boolean switch (`examples = true`) adds the flag when true.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory};

/// Longest config file, in bytes.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// `argv` with the settings of the `--config` file of `plotwire serve` added where neither
/// a flag nor an environment variable gave them; `argv` unchanged without one.
pub fn apply<C: CommandFactory>(argv: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let command = C::command();
    let Ok(matches) = command.clone().try_get_matches_from(&argv) else {
        // Bad arguments: the real parse reports them.
        return Ok(argv);
    };
    let Some(serve) = matches.subcommand_matches("serve") else {
        return Ok(argv);
    };
    let Some(path) = serve.get_one::<std::path::PathBuf>("config") else {
        return Ok(argv);
    };
    let shown = path.display();
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the config file {shown}: {e}"))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "the config file {shown} is {size} bytes, more than {MAX_FILE_BYTES}"
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the config file {shown}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("the config file {shown} is not valid TOML: {e}"))?;
    let Some(serve_command) = command.find_subcommand("serve") else {
        return Ok(argv);
    };
    let mut argv = argv;
    for (key, value) in &table {
        let long = key.replace('_', "-");
        let Some(arg) = serve_command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
        else {
            return Err(format!(
                "the config file {shown} sets {key:?}, which is not a flag of `plotwire serve` \
                 (see `plotwire serve --help`)"
            ));
        };
        if long == "config" {
            return Err(format!(
                "the config file {shown} cannot name another config file"
            ));
        }
        if serve.value_source(arg.get_id().as_str()) != Some(ValueSource::DefaultValue)
            && serve.value_source(arg.get_id().as_str()).is_some()
        {
            // A flag or an environment variable set it: they come first.
            continue;
        }
        let switch = matches!(arg.get_action(), ArgAction::SetTrue);
        let values: Vec<String> = match value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<_, _>>(),
            other => scalar(other).map(|v| vec![v]),
        }
        .map_err(|why| format!("the config file {shown}: {key}: {why}"))?;
        if switch {
            match value {
                toml::Value::Boolean(true) => argv.push(format!("--{long}").into()),
                toml::Value::Boolean(false) => {}
                _ => {
                    return Err(format!(
                        "the config file {shown}: {key}: must be true or false"
                    ))
                }
            }
            continue;
        }
        for v in values {
            argv.push(format!("--{long}={v}").into());
        }
    }
    Ok(argv)
}

/// A TOML scalar as a flag value.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        _ => Err("must be a string, a number, a boolean or a list of them".to_owned()),
    }
}
