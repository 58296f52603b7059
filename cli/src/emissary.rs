//! `argon emissary`: Argon inside a step's pod on Kubernetes (hidden; the
//! engine's kubernetes executor puts it there). See
//! argon_engine::executor::kubernetes::emissary.

use std::process::ExitCode;

use argon_engine::executor::kubernetes::emissary::{self, Env};

/// What the emissary does.
#[derive(clap::Subcommand)]
pub enum EmissaryCommand {
    /// In the pod's first init container: copy `argon` into the shared
    /// folder and fetch the step's inputs.
    Init,
    /// In the main container: run the command, then send its outcome and
    /// outputs back to the engine; ends with the command's exit code.
    Run {
        /// The step's command and arguments.
        #[arg(last = true, required = true)]
        argv: Vec<String>,
    },
}

pub fn dispatch(command: EmissaryCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&format!("cannot start: {e}")),
    };
    let env = match Env::from_process() {
        Ok(e) => e,
        Err(e) => return fail(&e),
    };
    match command {
        EmissaryCommand::Init => match runtime.block_on(emissary::init(&env)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
        EmissaryCommand::Run { argv } => {
            let code = runtime.block_on(emissary::run(&env, &argv));
            ExitCode::from(code.clamp(0, 255) as u8)
        }
    }
}

/// Says why on stderr and in the container's termination message, which
/// the engine reports as the step's error.
fn fail(message: &str) -> ExitCode {
    eprintln!("argon emissary: {message}");
    let _ = std::fs::write("/dev/termination-log", message);
    ExitCode::FAILURE
}
