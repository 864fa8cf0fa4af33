
use builtin;
use str;

set edit:completion:arg-completer[wanllmdb] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'wanllmdb'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'wanllmdb'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand login 'Store an API key for a server (checked against it first)'
            cand logout 'Forget the stored API key for a server'
            cand whoami 'Show who the stored key belongs to, and where it came from'
            cand auth 'Manage your account: change your password, print the stored API key'
            cand init 'Write ./.wanllmdb.toml (project, host) and create the project if missing'
            cand project 'Create, list, show and delete projects; manage members'
            cand run 'Track a program: wanllmdb run [OPTIONS] -- CMD [ARGS]…'
            cand log 'Log metrics (KEY=VALUE… or JSON lines on stdin) or a message to a run'
            cand sync 'Upload spooled runs (offline runs, or what an outage left behind)'
            cand import 'Bring history in from other trackers: an MLflow server, TensorBoard event files'
            cand export 'Send history to other trackers: a project to an MLflow server'
            cand runs 'List, inspect, compare and change runs'
            cand logs 'Print or follow a run''s output'
            cand open 'Print the web page of a run or project, and open it on a desktop'
            cand files 'Attach files to a run, list them, download them'
            cand artifact 'Version datasets, models and code: put, get, list, alias, reference, lineage'
            cand sweep 'Hyperparameter sweeps (W&B-format configs): create, run agents, inspect, control'
            cand model 'Model registry: register models, version them, stage, approve, alias, download'
            cand admin 'Server administration (administrators only)'
            cand audit 'Read the audit log: events, failed logins, statistics (administrators only)'
            cand server 'Run the tracking server (SQLite + local files by default, or PostgreSQL)'
            cand cache 'The local download cache: its size and limit; prune the least recently used content'
            cand completions 'Print shell completions (bash, zsh, fish, elvish, powershell)'
            cand generate-docs 'Write completions/ and man/ into a directory (used to refresh the repository''s copies)'
            cand guard-program 'Run a program under a guard that stops it when the wrapper dies (the wrapper uses this)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;login'= {
            cand --username 'Sign in with this account''s password and create an API key for this machine'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --password-stdin 'Read the password from stdin (for scripts)'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;logout'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;whoami'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;auth'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand passwd 'Change your password; your other sessions end, API keys keep working'
            cand token 'Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;auth;passwd'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --password-stdin 'Read the current password, then the new one, from stdin, one per line (for scripts)'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;auth;token'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;auth;help'= {
            cand passwd 'Change your password; your other sessions end, API keys keep working'
            cand token 'Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;auth;help;passwd'= {
        }
        &'wanllmdb;auth;help;token'= {
        }
        &'wanllmdb;auth;help;help'= {
        }
        &'wanllmdb;init'= {
            cand --scalars 'Also capture `key: value` numbers from output lines matching this regex in `wanllmdb run`'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;project'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Create a project'
            cand list 'List the projects you can see'
            cand show 'Show a project and its statistics'
            cand delete 'Delete a project and all its runs'
            cand members 'List, add and remove members, or change their role'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;project;create'= {
            cand --description 'What the project is about'
            cand --visibility 'Who can see it'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;project;list'= {
            cand --search 'Only names containing this text'
            cand --limit 'At most this many'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;project;show'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;project;delete'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;project;members'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List members and their roles'
            cand add 'Add a user with a role'
            cand remove 'Remove a user'
            cand role 'Change a user''s role'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;project;members;list'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;project;members;add'= {
            cand --role 'Role to give'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;project;members;remove'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;project;members;role'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;project;members;help'= {
            cand list 'List members and their roles'
            cand add 'Add a user with a role'
            cand remove 'Remove a user'
            cand role 'Change a user''s role'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;project;members;help;list'= {
        }
        &'wanllmdb;project;members;help;add'= {
        }
        &'wanllmdb;project;members;help;remove'= {
        }
        &'wanllmdb;project;members;help;role'= {
        }
        &'wanllmdb;project;members;help;help'= {
        }
        &'wanllmdb;project;help'= {
            cand create 'Create a project'
            cand list 'List the projects you can see'
            cand show 'Show a project and its statistics'
            cand delete 'Delete a project and all its runs'
            cand members 'List, add and remove members, or change their role'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;project;help;create'= {
        }
        &'wanllmdb;project;help;list'= {
        }
        &'wanllmdb;project;help;show'= {
        }
        &'wanllmdb;project;help;delete'= {
        }
        &'wanllmdb;project;help;members'= {
            cand list 'List members and their roles'
            cand add 'Add a user with a role'
            cand remove 'Remove a user'
            cand role 'Change a user''s role'
        }
        &'wanllmdb;project;help;members;list'= {
        }
        &'wanllmdb;project;help;members;add'= {
        }
        &'wanllmdb;project;help;members;remove'= {
        }
        &'wanllmdb;project;help;members;role'= {
        }
        &'wanllmdb;project;help;help'= {
        }
        &'wanllmdb;run'= {
            cand --name 'Display name of the run [default: the run id]'
            cand --id 'Run id (8 characters of a-z and 0-9); an existing id in the project is resumed'
            cand --tag 'Tag the run (repeatable)'
            cand --notes 'Notes about the run'
            cand --group 'Group runs that belong together (e.g. workers of one job)'
            cand --job-type 'Kind of job, e.g. train or eval'
            cand --config 'Hyperparameters: a .yaml/.json file or KEY=VALUE (dotted keys nest); repeatable, later wins'
            cand --scalars 'Also record `key: value` / `key=value` numbers from output lines matching this regex'
            cand --sync-timeout 'After the program ends, how long to keep trying an unreachable server before leaving the rest to `wanllmdb sync`'
            cand --save 'Attach files matching this glob to the run when it ends (repeatable; directories recursively)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --offline 'Do not contact the server; upload later with `wanllmdb sync`'
            cand --no-system-metrics 'Record no system/… metrics (CPU, memory, GPUs every 15 s)'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;log'= {
            cand --run 'Run id [default: the wrapped run, $WANLLMDB_RUN_ID]'
            cand --step 'Step of these values'
            cand -m 'Log this text as a log line instead of metrics'
            cand --message 'Log this text as a log line instead of metrics'
            cand --level 'Level of --message: debug, info, warning or error'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sync'= {
            cand -j 'Runs uploaded at the same time'
            cand --jobs 'Runs uploaded at the same time'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --dry-run 'Only list what would be uploaded'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;import'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand tensorboard 'TensorBoard event files: each directory of them a run, each scalar tag a metric'
            cand mlflow 'A running MLflow server: experiments, runs, metrics, artifacts, registered models'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;import;tensorboard'= {
            cand -p 'The project to import into (created if missing) [default: from .wanllmdb.toml]'
            cand --project 'The project to import into (created if missing) [default: from .wanllmdb.toml]'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --dry-run 'Only read the files and print what would be imported'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;import;mlflow'= {
            cand --from 'The MLflow server''s URL (its MLFLOW_TRACKING_URI)'
            cand --experiments 'Only these experiments (by name) [default: every active experiment]'
            cand --source-token 'A token for the MLflow server [default: MLFLOW_TRACKING_TOKEN]'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --no-models 'Leave out registered models'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;import;help'= {
            cand tensorboard 'TensorBoard event files: each directory of them a run, each scalar tag a metric'
            cand mlflow 'A running MLflow server: experiments, runs, metrics, artifacts, registered models'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;import;help;tensorboard'= {
        }
        &'wanllmdb;import;help;mlflow'= {
        }
        &'wanllmdb;import;help;help'= {
        }
        &'wanllmdb;export'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand mlflow 'To an MLflow server: a project''s runs, metrics, files and registered models'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;export;mlflow'= {
            cand --to 'The MLflow server''s URL (its MLFLOW_TRACKING_URI)'
            cand -p 'The project to export [default: from .wanllmdb.toml]'
            cand --project 'The project to export [default: from .wanllmdb.toml]'
            cand --token 'A token for the MLflow server [default: MLFLOW_TRACKING_TOKEN]'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --no-models 'Leave out registered models'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;export;help'= {
            cand mlflow 'To an MLflow server: a project''s runs, metrics, files and registered models'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;export;help;mlflow'= {
        }
        &'wanllmdb;export;help;help'= {
        }
        &'wanllmdb;runs'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List runs of a project, newest first'
            cand show 'Show one run: state, config, git, host and metric summary'
            cand compare 'Compare runs side by side: config differences and summary metrics'
            cand history 'Print a run''s metric history'
            cand plot 'Draw runs'' metrics in the terminal (Braille characters at the terminal''s width)'
            cand tag 'Add or remove tags'
            cand notes 'Replace a run''s notes'
            cand stop 'Ask a running run to stop (its wrapper stops the program at the next heartbeat)'
            cand delete 'Delete a run with its metrics and logs'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;runs;list'= {
            cand --state 'Only runs in this state: running, finished, crashed, killed'
            cand --tag 'Only runs with this tag (repeatable: all must match)'
            cand --search 'Only runs whose name or id contains this text'
            cand --filter 'Filter expression, e.g. ''summary.acc >= 0.9'' (repeatable)'
            cand --sort 'Sort key, `-` for descending: created_at, name, state, config.X, summary.X'
            cand --limit 'At most this many runs'
            cand --columns 'Columns: id, name, state, user, created, finished, tags, group, job_type, host, exit_code, notes, project, config.X, summary.X'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;runs;show'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;runs;compare'= {
            cand --keys 'Only these summary metrics'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --all 'Also show config values that are equal in every run'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;runs;history'= {
            cand --keys 'Only these metrics (comma-separated) [default: all]'
            cand --format 'csv (one row per step, one column per metric) or json (the API''s columnar answer)'
            cand --max-points 'Downsample each metric to at most this many buckets (each bucket''s last value; json adds min and max)'
            cand --min-step 'From this step'
            cand --max-step 'Up to this step'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;runs;plot'= {
            cand --keys 'Metrics to plot (comma-separated), one chart each'
            cand --width 'Width in characters [default: the terminal''s]'
            cand --height 'Height of each chart in lines'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;runs;tag'= {
            cand --add 'Tag to add (repeatable)'
            cand --remove 'Tag to remove (repeatable)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;runs;notes'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;runs;stop'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;runs;delete'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;runs;help'= {
            cand list 'List runs of a project, newest first'
            cand show 'Show one run: state, config, git, host and metric summary'
            cand compare 'Compare runs side by side: config differences and summary metrics'
            cand history 'Print a run''s metric history'
            cand plot 'Draw runs'' metrics in the terminal (Braille characters at the terminal''s width)'
            cand tag 'Add or remove tags'
            cand notes 'Replace a run''s notes'
            cand stop 'Ask a running run to stop (its wrapper stops the program at the next heartbeat)'
            cand delete 'Delete a run with its metrics and logs'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;runs;help;list'= {
        }
        &'wanllmdb;runs;help;show'= {
        }
        &'wanllmdb;runs;help;compare'= {
        }
        &'wanllmdb;runs;help;history'= {
        }
        &'wanllmdb;runs;help;plot'= {
        }
        &'wanllmdb;runs;help;tag'= {
        }
        &'wanllmdb;runs;help;notes'= {
        }
        &'wanllmdb;runs;help;stop'= {
        }
        &'wanllmdb;runs;help;delete'= {
        }
        &'wanllmdb;runs;help;help'= {
        }
        &'wanllmdb;logs'= {
            cand --level 'Minimum level: debug, info, warning, error'
            cand --source 'Only lines from stdout, stderr, sdk or user'
            cand --grep 'Only lines containing this text (case-insensitive)'
            cand --format 'txt (time, level, source, message), json or csv'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -f 'Keep printing new lines until the run ends'
            cand --follow 'Keep printing new lines until the run ends'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;open'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --print 'Only print the URL, even on a desktop'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;files'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand put 'Attach files or directories to a run (only bytes the server lacks are sent)'
            cand get 'Download a run''s files (all, or the paths given), checking every SHA-256'
            cand list 'List a run''s files'
            cand delete 'Detach files from a run'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;files;put'= {
            cand --prefix 'Store under this directory on the server'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;files;get'= {
            cand --dir 'Directory to write into'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;files;list'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;files;delete'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;files;help'= {
            cand put 'Attach files or directories to a run (only bytes the server lacks are sent)'
            cand get 'Download a run''s files (all, or the paths given), checking every SHA-256'
            cand list 'List a run''s files'
            cand delete 'Detach files from a run'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;files;help;put'= {
        }
        &'wanllmdb;files;help;get'= {
        }
        &'wanllmdb;files;help;list'= {
        }
        &'wanllmdb;files;help;delete'= {
        }
        &'wanllmdb;files;help;help'= {
        }
        &'wanllmdb;artifact'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand put 'Log files, directories and references as a new version of an artifact'
            cand get 'Download a version, checking every digest (content already cached is copied locally)'
            cand ls 'List a project''s artifacts'
            cand versions 'List the versions of an artifact, newest first'
            cand show 'Show a version: details, aliases, files and lineage'
            cand lineage 'Where a version came from (the runs and inputs upstream) and what was made with it, as trees'
            cand alias 'Point an alias at a version, or remove it with --remove'
            cand aliases 'List an artifact''s aliases (latest included) and the versions they point at'
            cand cache 'Show where the local content cache is and how much it holds; --clear empties it (`wanllmdb cache` shows its size limit and prunes it)'
            cand ref 'Log a version made of references to s3://, gs:// or https:// objects'
            cand update 'Change an artifact''s description, tags or metadata (a version''s files never change)'
            cand delete 'Delete an artifact with all its versions and aliases'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;artifact;put'= {
            cand --name 'Artifact name (NAME, or PROJECT/NAME)'
            cand --type 'Type: model, dataset, file, code or any other word (needed for a new artifact)'
            cand --alias 'Point this alias at the new version (repeatable)'
            cand --description 'Description of the version'
            cand --metadata 'KEY=VALUE metadata of the version (values parsed as JSON when they can be; repeatable)'
            cand --run 'Run that produced it [default: $WANLLMDB_RUN_ID inside `wanllmdb run`]'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;get'= {
            cand --dir 'Directory to write into [default: ./artifacts/NAME/vN]'
            cand --run 'Record this run as a user of the version [default: $WANLLMDB_RUN_ID]'
            cand --cache-max-size 'Most the local cache keeps; after the download the least recently used content goes: 20GiB, 500MB, 10% (of its disk), 0 or unlimited [default: `cache_max_size` in the user config, else 10% of the disk, at most 50 GiB]'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --no-cache 'Download without keeping a copy in the local cache'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;ls'= {
            cand --type 'Only this type'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;versions'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;show'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;lineage'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;alias'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --remove 'Remove the alias instead'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;aliases'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;cache'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --clear 'Delete everything in the cache'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;ref'= {
            cand --type 'Type (needed for a new artifact)'
            cand --alias 'Point this alias at the new version (repeatable)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;update'= {
            cand --description 'New description'
            cand --tag 'Replace the tags with these (repeatable)'
            cand --metadata 'Set these KEY=VALUE pairs in the metadata, keeping the other keys; KEY=null removes one (repeatable)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --clear-tags 'Remove all tags'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;delete'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;artifact;help'= {
            cand put 'Log files, directories and references as a new version of an artifact'
            cand get 'Download a version, checking every digest (content already cached is copied locally)'
            cand ls 'List a project''s artifacts'
            cand versions 'List the versions of an artifact, newest first'
            cand show 'Show a version: details, aliases, files and lineage'
            cand lineage 'Where a version came from (the runs and inputs upstream) and what was made with it, as trees'
            cand alias 'Point an alias at a version, or remove it with --remove'
            cand aliases 'List an artifact''s aliases (latest included) and the versions they point at'
            cand cache 'Show where the local content cache is and how much it holds; --clear empties it (`wanllmdb cache` shows its size limit and prunes it)'
            cand ref 'Log a version made of references to s3://, gs:// or https:// objects'
            cand update 'Change an artifact''s description, tags or metadata (a version''s files never change)'
            cand delete 'Delete an artifact with all its versions and aliases'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;artifact;help;put'= {
        }
        &'wanllmdb;artifact;help;get'= {
        }
        &'wanllmdb;artifact;help;ls'= {
        }
        &'wanllmdb;artifact;help;versions'= {
        }
        &'wanllmdb;artifact;help;show'= {
        }
        &'wanllmdb;artifact;help;lineage'= {
        }
        &'wanllmdb;artifact;help;alias'= {
        }
        &'wanllmdb;artifact;help;aliases'= {
        }
        &'wanllmdb;artifact;help;cache'= {
        }
        &'wanllmdb;artifact;help;ref'= {
        }
        &'wanllmdb;artifact;help;update'= {
        }
        &'wanllmdb;artifact;help;delete'= {
        }
        &'wanllmdb;artifact;help;help'= {
        }
        &'wanllmdb;sweep'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Create a sweep from a YAML or JSON config (W&B''s sweep format)'
            cand validate 'Check a config without creating anything; lists every problem with its path'
            cand list 'List the sweeps of the project'
            cand show 'Show a sweep: state, counts, best run, top runs, parameter importance'
            cand trials 'List every trial of a sweep with its parameters and value'
            cand suggest 'Manual mode: reserve the next parameters and a run id to start yourself'
            cand pause 'Stop handing out new runs; running ones go on'
            cand resume 'Hand out runs again after a pause'
            cand finish 'End the sweep: no new runs; running ones finish'
            cand cancel 'End the sweep and stop its running runs'
            cand delete 'Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)'
            cand retry-failed 'Queue every crashed run to be tried again with the same parameters'
            cand agent 'Run trials of a sweep here until it is done (or --count runs)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;sweep;create'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;validate'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;list'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;show'= {
            cand --top 'Rows of the top-runs table'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;trials'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;suggest'= {
            cand --write 'Also write the (nested) parameters to this JSON file'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;pause'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;resume'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;finish'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;cancel'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;delete'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;retry-failed'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;agent'= {
            cand --count 'Run at most this many trials, then exit'
            cand --grace 'Seconds between SIGTERM and SIGKILL when a run is stopped'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --no-system-metrics 'Record no system/… metrics for the runs (CPU, memory, GPUs every 15 s)'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;sweep;help'= {
            cand create 'Create a sweep from a YAML or JSON config (W&B''s sweep format)'
            cand validate 'Check a config without creating anything; lists every problem with its path'
            cand list 'List the sweeps of the project'
            cand show 'Show a sweep: state, counts, best run, top runs, parameter importance'
            cand trials 'List every trial of a sweep with its parameters and value'
            cand suggest 'Manual mode: reserve the next parameters and a run id to start yourself'
            cand pause 'Stop handing out new runs; running ones go on'
            cand resume 'Hand out runs again after a pause'
            cand finish 'End the sweep: no new runs; running ones finish'
            cand cancel 'End the sweep and stop its running runs'
            cand delete 'Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)'
            cand retry-failed 'Queue every crashed run to be tried again with the same parameters'
            cand agent 'Run trials of a sweep here until it is done (or --count runs)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;sweep;help;create'= {
        }
        &'wanllmdb;sweep;help;validate'= {
        }
        &'wanllmdb;sweep;help;list'= {
        }
        &'wanllmdb;sweep;help;show'= {
        }
        &'wanllmdb;sweep;help;trials'= {
        }
        &'wanllmdb;sweep;help;suggest'= {
        }
        &'wanllmdb;sweep;help;pause'= {
        }
        &'wanllmdb;sweep;help;resume'= {
        }
        &'wanllmdb;sweep;help;finish'= {
        }
        &'wanllmdb;sweep;help;cancel'= {
        }
        &'wanllmdb;sweep;help;delete'= {
        }
        &'wanllmdb;sweep;help;retry-failed'= {
        }
        &'wanllmdb;sweep;help;agent'= {
        }
        &'wanllmdb;sweep;help;help'= {
        }
        &'wanllmdb;model'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand register 'Register a model in the project (model names are unique on the server)'
            cand ls 'List registered models: those of the project, or every one you can read with --all'
            cand show 'Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)'
            cand versions 'List a model''s versions, newest first'
            cand version 'Create or delete model versions'
            cand transition 'Move a version to another stage (Production may need an approval first)'
            cand approve 'Approve a version for Production (project admins and owners), or --revoke the approval'
            cand alias 'Point an alias at a version, or remove one with --remove ALIAS'
            cand history 'Who did what to a model (or to one version), oldest first'
            cand update 'Change a model''s description, tags or approval setting'
            cand delete 'Delete a model with all its versions, aliases and history (project admins)'
            cand policy 'Show the project''s registry policy, or change it (project admins)'
            cand download 'Download a model version''s files, checking every digest (as `artifact get` does)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;model;register'= {
            cand --description 'Free text'
            cand --tag 'Tag (repeatable)'
            cand --require-approval 'Whether Production needs an approval [default: the project''s policy]'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;ls'= {
            cand --search 'Only models whose name or description contains this'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --all 'Models of every project you can read, not just the current one'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;show'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;versions'= {
            cand --stage 'Only versions in this stage'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;version'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand create 'Register an artifact version as the next version of a model'
            cand delete 'Delete a version (project admins); its artifact version stays'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;model;version;create'= {
            cand --artifact 'ART:VER, ART:ALIAS or PROJECT/ART:VER'
            cand --run 'The run that trained it [default: $WANLLMDB_RUN_ID inside `wanllmdb run`]'
            cand --metrics 'Evaluation metric KEY=VALUE (repeatable)'
            cand --description 'Free text'
            cand --tag 'Tag (repeatable)'
            cand --stage 'Move it to this stage at once, under the rules of `model transition` (Production without a needed approval leaves it in None, with a warning)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;version;delete'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;version;help'= {
            cand create 'Register an artifact version as the next version of a model'
            cand delete 'Delete a version (project admins); its artifact version stays'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;model;version;help;create'= {
        }
        &'wanllmdb;model;version;help;delete'= {
        }
        &'wanllmdb;model;version;help;help'= {
        }
        &'wanllmdb;model;transition'= {
            cand --to 'Stage to move to: Staging, Production, Archived or None'
            cand -m 'Why (kept in the history)'
            cand --comment 'Why (kept in the history)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --archive-existing 'Into Production or Staging: archive the versions already in that stage'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;approve'= {
            cand -m 'Why (kept in the history)'
            cand --comment 'Why (kept in the history)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --revoke 'Withdraw the approval instead'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;alias'= {
            cand --remove 'Remove this alias instead'
            cand -m 'Why (kept in the history)'
            cand --comment 'Why (kept in the history)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;history'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;update'= {
            cand --description 'New description'
            cand --tag 'Replace the tags with these (repeatable)'
            cand --require-approval 'Whether Production needs an approval for this model'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --clear-tags 'Remove all tags'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;delete'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -y 'Do not ask for confirmation'
            cand --yes 'Do not ask for confirmation'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;policy'= {
            cand --require-approval 'Production needs an approval'
            cand --allow-self-approval 'The creator of a version may approve it'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;download'= {
            cand --dir 'Directory to write into [default: ./models/NAME/vN]'
            cand --run 'Record this run as a user of the files [default: $WANLLMDB_RUN_ID]'
            cand --cache-max-size 'Most the local cache keeps; after the download the least recently used content goes: 20GiB, 500MB, 10% (of its disk), 0 or unlimited [default: `cache_max_size` in the user config, else 10% of the disk, at most 50 GiB]'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --no-cache 'Download without keeping a copy in the local cache'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;model;help'= {
            cand register 'Register a model in the project (model names are unique on the server)'
            cand ls 'List registered models: those of the project, or every one you can read with --all'
            cand show 'Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)'
            cand versions 'List a model''s versions, newest first'
            cand version 'Create or delete model versions'
            cand transition 'Move a version to another stage (Production may need an approval first)'
            cand approve 'Approve a version for Production (project admins and owners), or --revoke the approval'
            cand alias 'Point an alias at a version, or remove one with --remove ALIAS'
            cand history 'Who did what to a model (or to one version), oldest first'
            cand update 'Change a model''s description, tags or approval setting'
            cand delete 'Delete a model with all its versions, aliases and history (project admins)'
            cand policy 'Show the project''s registry policy, or change it (project admins)'
            cand download 'Download a model version''s files, checking every digest (as `artifact get` does)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;model;help;register'= {
        }
        &'wanllmdb;model;help;ls'= {
        }
        &'wanllmdb;model;help;show'= {
        }
        &'wanllmdb;model;help;versions'= {
        }
        &'wanllmdb;model;help;version'= {
            cand create 'Register an artifact version as the next version of a model'
            cand delete 'Delete a version (project admins); its artifact version stays'
        }
        &'wanllmdb;model;help;version;create'= {
        }
        &'wanllmdb;model;help;version;delete'= {
        }
        &'wanllmdb;model;help;transition'= {
        }
        &'wanllmdb;model;help;approve'= {
        }
        &'wanllmdb;model;help;alias'= {
        }
        &'wanllmdb;model;help;history'= {
        }
        &'wanllmdb;model;help;update'= {
        }
        &'wanllmdb;model;help;delete'= {
        }
        &'wanllmdb;model;help;policy'= {
        }
        &'wanllmdb;model;help;download'= {
        }
        &'wanllmdb;model;help;help'= {
        }
        &'wanllmdb;admin'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand gc 'Delete stored file contents nothing refers to any more (server administrators only)'
            cand user 'Accounts: list, show, create, disable, enable, reset passwords, promote, demote (server administrators only)'
            cand api-key 'Every account''s API keys: list and revoke (server administrators only)'
            cand status 'The server''s version, uptime, CPU, memory, disk, database and blob store (server administrators only)'
            cand backup 'Write a consistent backup of the server''s database and local blobs to one file, while the server keeps running (reads the storage directly; no login needed)'
            cand restore 'Restore a backup into a new data directory (or an empty database and bucket)'
            cand verify 'Check the database''s integrity, every metric chunk''s checksum and every blob''s digest, or a backup file against its manifest; exits with 1 and lists the problems when anything is wrong'
            cand export 'Export everything (tables as JSON lines, blobs as files) into a directory, to import into another backend'
            cand import 'Import an export into an empty database and blob store, then compare counts and checksums with the export'
            cand compact 'Rewrite metric chunks stored in an older format in the current one (with a checksum), working on the storage directly; safe while the server runs'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;admin;gc'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --dry-run 'Only report what would be deleted'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;user'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List accounts, oldest first'
            cand show 'Show one account'
            cand create 'Create an account; without --password-stdin a strong password is generated and printed once on stdout'
            cand disable 'Disable an account: it cannot log in, and its API keys and sessions are revoked at once'
            cand enable 'Let a disabled account log in again (its revoked API keys stay revoked)'
            cand reset-password 'Set a new password and end the account''s sessions (its API keys are kept)'
            cand promote 'Make an account a server administrator'
            cand demote 'Make a server administrator an ordinary account'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;admin;user;list'= {
            cand --search 'Only accounts whose username or email contains this text (any case)'
            cand --limit 'At most this many'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;user;show'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;user;create'= {
            cand --email 'Email address (unique on the server)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --admin 'Make the account a server administrator'
            cand --password-stdin 'Read the password from the first line of stdin instead of generating one'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;user;disable'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;user;enable'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;user;reset-password'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --password-stdin 'Read the new password from the first line of stdin instead of generating one'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;user;promote'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;user;demote'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;user;help'= {
            cand list 'List accounts, oldest first'
            cand show 'Show one account'
            cand create 'Create an account; without --password-stdin a strong password is generated and printed once on stdout'
            cand disable 'Disable an account: it cannot log in, and its API keys and sessions are revoked at once'
            cand enable 'Let a disabled account log in again (its revoked API keys stay revoked)'
            cand reset-password 'Set a new password and end the account''s sessions (its API keys are kept)'
            cand promote 'Make an account a server administrator'
            cand demote 'Make a server administrator an ordinary account'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;admin;user;help;list'= {
        }
        &'wanllmdb;admin;user;help;show'= {
        }
        &'wanllmdb;admin;user;help;create'= {
        }
        &'wanllmdb;admin;user;help;disable'= {
        }
        &'wanllmdb;admin;user;help;enable'= {
        }
        &'wanllmdb;admin;user;help;reset-password'= {
        }
        &'wanllmdb;admin;user;help;promote'= {
        }
        &'wanllmdb;admin;user;help;demote'= {
        }
        &'wanllmdb;admin;user;help;help'= {
        }
        &'wanllmdb;admin;api-key'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List active API keys of every account, or of one (never the secrets)'
            cand revoke 'Revoke an API key of any account, by id'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;admin;api-key;list'= {
            cand --user 'Only this account''s keys'
            cand --limit 'At most this many'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;api-key;revoke'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;api-key;help'= {
            cand list 'List active API keys of every account, or of one (never the secrets)'
            cand revoke 'Revoke an API key of any account, by id'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;admin;api-key;help;list'= {
        }
        &'wanllmdb;admin;api-key;help;revoke'= {
        }
        &'wanllmdb;admin;api-key;help;help'= {
        }
        &'wanllmdb;admin;status'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;backup'= {
            cand -o 'The archive to write (must not exist yet)'
            cand --out 'The archive to write (must not exist yet)'
            cand --data-dir 'Directory for the SQLite database, files and the admin key [default: the platform data directory]'
            cand --database-url 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]'
            cand --storage-url 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]'
            cand --s3-endpoint 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]'
            cand --s3-region 'S3 region [default: AWS_REGION, else us-east-1]'
            cand --s3-path-style 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]'
            cand --config 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;restore'= {
            cand --data-dir 'Directory for the SQLite database, files and the admin key [default: the platform data directory]'
            cand --database-url 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]'
            cand --storage-url 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]'
            cand --s3-endpoint 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]'
            cand --s3-region 'S3 region [default: AWS_REGION, else us-east-1]'
            cand --s3-path-style 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]'
            cand --config 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;verify'= {
            cand --backup 'Check this backup archive against its manifest instead of the server''s storage'
            cand --data-dir 'Directory for the SQLite database, files and the admin key [default: the platform data directory]'
            cand --database-url 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]'
            cand --storage-url 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]'
            cand --s3-endpoint 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]'
            cand --s3-region 'S3 region [default: AWS_REGION, else us-east-1]'
            cand --s3-path-style 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]'
            cand --config 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;export'= {
            cand -o 'The directory to write (must be empty or absent)'
            cand --out 'The directory to write (must be empty or absent)'
            cand --data-dir 'Directory for the SQLite database, files and the admin key [default: the platform data directory]'
            cand --database-url 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]'
            cand --storage-url 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]'
            cand --s3-endpoint 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]'
            cand --s3-region 'S3 region [default: AWS_REGION, else us-east-1]'
            cand --s3-path-style 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]'
            cand --config 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;import'= {
            cand --data-dir 'Directory for the SQLite database, files and the admin key [default: the platform data directory]'
            cand --database-url 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]'
            cand --storage-url 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]'
            cand --s3-endpoint 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]'
            cand --s3-region 'S3 region [default: AWS_REGION, else us-east-1]'
            cand --s3-path-style 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]'
            cand --config 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;compact'= {
            cand --data-dir 'Directory for the SQLite database, files and the admin key [default: the platform data directory]'
            cand --database-url 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]'
            cand --storage-url 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]'
            cand --s3-endpoint 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]'
            cand --s3-region 'S3 region [default: AWS_REGION, else us-east-1]'
            cand --s3-path-style 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]'
            cand --config 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;admin;help'= {
            cand gc 'Delete stored file contents nothing refers to any more (server administrators only)'
            cand user 'Accounts: list, show, create, disable, enable, reset passwords, promote, demote (server administrators only)'
            cand api-key 'Every account''s API keys: list and revoke (server administrators only)'
            cand status 'The server''s version, uptime, CPU, memory, disk, database and blob store (server administrators only)'
            cand backup 'Write a consistent backup of the server''s database and local blobs to one file, while the server keeps running (reads the storage directly; no login needed)'
            cand restore 'Restore a backup into a new data directory (or an empty database and bucket)'
            cand verify 'Check the database''s integrity, every metric chunk''s checksum and every blob''s digest, or a backup file against its manifest; exits with 1 and lists the problems when anything is wrong'
            cand export 'Export everything (tables as JSON lines, blobs as files) into a directory, to import into another backend'
            cand import 'Import an export into an empty database and blob store, then compare counts and checksums with the export'
            cand compact 'Rewrite metric chunks stored in an older format in the current one (with a checksum), working on the storage directly; safe while the server runs'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;admin;help;gc'= {
        }
        &'wanllmdb;admin;help;user'= {
            cand list 'List accounts, oldest first'
            cand show 'Show one account'
            cand create 'Create an account; without --password-stdin a strong password is generated and printed once on stdout'
            cand disable 'Disable an account: it cannot log in, and its API keys and sessions are revoked at once'
            cand enable 'Let a disabled account log in again (its revoked API keys stay revoked)'
            cand reset-password 'Set a new password and end the account''s sessions (its API keys are kept)'
            cand promote 'Make an account a server administrator'
            cand demote 'Make a server administrator an ordinary account'
        }
        &'wanllmdb;admin;help;user;list'= {
        }
        &'wanllmdb;admin;help;user;show'= {
        }
        &'wanllmdb;admin;help;user;create'= {
        }
        &'wanllmdb;admin;help;user;disable'= {
        }
        &'wanllmdb;admin;help;user;enable'= {
        }
        &'wanllmdb;admin;help;user;reset-password'= {
        }
        &'wanllmdb;admin;help;user;promote'= {
        }
        &'wanllmdb;admin;help;user;demote'= {
        }
        &'wanllmdb;admin;help;api-key'= {
            cand list 'List active API keys of every account, or of one (never the secrets)'
            cand revoke 'Revoke an API key of any account, by id'
        }
        &'wanllmdb;admin;help;api-key;list'= {
        }
        &'wanllmdb;admin;help;api-key;revoke'= {
        }
        &'wanllmdb;admin;help;status'= {
        }
        &'wanllmdb;admin;help;backup'= {
        }
        &'wanllmdb;admin;help;restore'= {
        }
        &'wanllmdb;admin;help;verify'= {
        }
        &'wanllmdb;admin;help;export'= {
        }
        &'wanllmdb;admin;help;import'= {
        }
        &'wanllmdb;admin;help;compact'= {
        }
        &'wanllmdb;admin;help;help'= {
        }
        &'wanllmdb;audit'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand logs 'List audit events, newest first; filters combine'
            cand stats 'Event counts of the last hours: by category, severity and outcome, logins and failure rate'
            cand failed-logins 'Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;audit;logs'= {
            cand --event-category 'Only these categories: authentication, authorization, data_modification, data_access, security'
            cand --category 'Only these categories: authentication, authorization, data_modification, data_access, security'
            cand --event-type 'Only this event type, e.g. auth.login.failed, project.delete, or a short name such as login_failure'
            cand --type 'Only this event type, e.g. auth.login.failed, project.delete, or a short name such as login_failure'
            cand --severity 'Only these severities: critical, high, medium, low, info'
            cand --user 'Only events of this user (a user id or a username)'
            cand --user-id 'Only events of the user with this id'
            cand --username 'Only events of this username, and failed logins that tried it'
            cand --resource-type 'Only this kind of object, e.g. project, run, user, model_version'
            cand --resource-id 'Only this object, e.g. mnist'
            cand --resource 'Only this object as kind:id, e.g. project:mnist'
            cand --status 'Only this outcome: success, failure or error; a number is the HTTP status'
            cand --start-date 'From this time on (a date, RFC 3339, Unix seconds, or an age such as 24h)'
            cand --since 'From this time on (a date, RFC 3339, Unix seconds, or an age such as 24h)'
            cand --end-date 'Up to this time (a date includes its whole day)'
            cand --until 'Up to this time (a date includes its whole day)'
            cand --hours 'Only the last this many hours'
            cand --limit 'At most this many events [default: 100; csv: all]'
            cand --format 'table, json (an array; one object per line with --follow) or csv'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -f 'After the matching events, print new ones as they happen until Ctrl-C'
            cand --follow 'After the matching events, print new ones as they happen until Ctrl-C'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;audit;stats'= {
            cand --hours 'The window: the last this many hours'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;audit;failed-logins'= {
            cand --hours 'The window: the last this many hours'
            cand --limit 'At most this many attempts (1–1000)'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;audit;help'= {
            cand logs 'List audit events, newest first; filters combine'
            cand stats 'Event counts of the last hours: by category, severity and outcome, logins and failure rate'
            cand failed-logins 'Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;audit;help;logs'= {
        }
        &'wanllmdb;audit;help;stats'= {
        }
        &'wanllmdb;audit;help;failed-logins'= {
        }
        &'wanllmdb;audit;help;help'= {
        }
        &'wanllmdb;server'= {
            cand --bind 'Address and port to listen on [default: 127.0.0.1:8000]'
            cand --metrics-bind 'Serve /metrics on this address only (e.g. 127.0.0.1:9090), so it can stay off the network the API is on [default: /metrics is served on --bind]'
            cand --public-url 'The server''s URL as clients reach it (e.g. https://ml.example.com behind a proxy), used in the absolute upload and download URLs it hands out [default: from each request''s Host]'
            cand --s3-public-endpoint 'The S3 endpoint as clients reach it, when it differs from --s3-endpoint (e.g. the server reaches http://minio:9000 but clients https://minio.example.com): presigned URLs are signed for it [default: --s3-endpoint]'
            cand --data-dir 'Directory for the SQLite database, files and the admin key [default: the platform data directory]'
            cand --database-url 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]'
            cand --storage-url 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]'
            cand --s3-endpoint 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]'
            cand --s3-region 'S3 region [default: AWS_REGION, else us-east-1]'
            cand --s3-path-style 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]'
            cand --config 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies'
            cand --max-body-bytes 'Largest accepted request body in bytes, after decompression [default: 67108864]'
            cand --max-inflight-body-bytes 'Request body bytes all requests together may hold in memory; past it requests are answered 503 with Retry-After [default: 268435456]'
            cand --max-run-config-bytes 'Largest run config in bytes of JSON; a larger one is refused with 413 [default: 1048576]'
            cand --header-timeout 'Seconds a connection may take to send a request''s headers; also how long an idle keep-alive connection is kept open [default: 30]'
            cand --body-timeout 'Seconds a request body may pause before the request is dropped with 408 [default: 30]'
            cand --log-format 'Log lines as text or as JSON objects, one per line (one per request, plus events) [default: text]'
            cand --heartbeat-timeout 'Seconds without a heartbeat after which a running run is marked crashed [default: 300]'
            cand --audit-retention-days 'Days to keep audit events; older ones are deleted hourly (0 keeps them forever) [default: 365]'
            cand --allow-registration 'Let anyone register an account (true) or only administrators create them (false) [default: true]'
            cand --jwt-secret 'Secret for signing session tokens; generated and kept in the database when unset'
            cand --reference-allow-host 'Host that artifact references may point at although it resolves to a private address (an exact name, or .example.com for all its subdomains); repeat or separate with commas'
            cand --trusted-proxy 'Reverse proxy (an address or a CIDR network such as 10.0.0.0/8) whose X-Forwarded-For or Forwarded header names the client for audit rows and login limits; repeat or separate with commas. Headers from other peers are ignored [default: none]'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;cache'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand info 'Show where the cache is, what it holds and its size limit'
            cand prune 'Remove the least recently used content until the cache is within its limit'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;cache;info'= {
            cand --max-size 'Show the limit this size would give instead of the configured one'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;cache;prune'= {
            cand --max-size 'Keep at most this much: 20GiB, 500MB, 10% (of the disk) or 0'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --all 'Remove every entry, whatever the limit'
            cand --dry-run 'Only say what would be removed'
            cand --json 'Print JSON instead of a table: the API''s own objects, stable and documented'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;cache;help'= {
            cand info 'Show where the cache is, what it holds and its size limit'
            cand prune 'Remove the least recently used content until the cache is within its limit'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;cache;help;info'= {
        }
        &'wanllmdb;cache;help;prune'= {
        }
        &'wanllmdb;cache;help;help'= {
        }
        &'wanllmdb;completions'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;generate-docs'= {
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;guard-program'= {
            cand --control-fd 'The read end of the wrapper''s pipe'
            cand --status-file 'Where the program''s end is written: `exit N`, `signal N` or `error KIND MESSAGE`'
            cand --grace 'Seconds between SIGTERM and SIGKILL once the wrapper is gone'
            cand --host 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]'
            cand --api-key 'API key [default: the one stored by `wanllmdb login`]'
            cand --project 'Project [default: from ./.wanllmdb.toml]'
            cand --own-group 'Start the program in a process group of its own'
            cand -q 'Print only data and errors'
            cand --quiet 'Print only data and errors'
            cand -v 'Print more about what happens'
            cand --verbose 'Print more about what happens'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;help'= {
            cand login 'Store an API key for a server (checked against it first)'
            cand logout 'Forget the stored API key for a server'
            cand whoami 'Show who the stored key belongs to, and where it came from'
            cand auth 'Manage your account: change your password, print the stored API key'
            cand init 'Write ./.wanllmdb.toml (project, host) and create the project if missing'
            cand project 'Create, list, show and delete projects; manage members'
            cand run 'Track a program: wanllmdb run [OPTIONS] -- CMD [ARGS]…'
            cand log 'Log metrics (KEY=VALUE… or JSON lines on stdin) or a message to a run'
            cand sync 'Upload spooled runs (offline runs, or what an outage left behind)'
            cand import 'Bring history in from other trackers: an MLflow server, TensorBoard event files'
            cand export 'Send history to other trackers: a project to an MLflow server'
            cand runs 'List, inspect, compare and change runs'
            cand logs 'Print or follow a run''s output'
            cand open 'Print the web page of a run or project, and open it on a desktop'
            cand files 'Attach files to a run, list them, download them'
            cand artifact 'Version datasets, models and code: put, get, list, alias, reference, lineage'
            cand sweep 'Hyperparameter sweeps (W&B-format configs): create, run agents, inspect, control'
            cand model 'Model registry: register models, version them, stage, approve, alias, download'
            cand admin 'Server administration (administrators only)'
            cand audit 'Read the audit log: events, failed logins, statistics (administrators only)'
            cand server 'Run the tracking server (SQLite + local files by default, or PostgreSQL)'
            cand cache 'The local download cache: its size and limit; prune the least recently used content'
            cand completions 'Print shell completions (bash, zsh, fish, elvish, powershell)'
            cand generate-docs 'Write completions/ and man/ into a directory (used to refresh the repository''s copies)'
            cand guard-program 'Run a program under a guard that stops it when the wrapper dies (the wrapper uses this)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;help;login'= {
        }
        &'wanllmdb;help;logout'= {
        }
        &'wanllmdb;help;whoami'= {
        }
        &'wanllmdb;help;auth'= {
            cand passwd 'Change your password; your other sessions end, API keys keep working'
            cand token 'Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)'
        }
        &'wanllmdb;help;auth;passwd'= {
        }
        &'wanllmdb;help;auth;token'= {
        }
        &'wanllmdb;help;init'= {
        }
        &'wanllmdb;help;project'= {
            cand create 'Create a project'
            cand list 'List the projects you can see'
            cand show 'Show a project and its statistics'
            cand delete 'Delete a project and all its runs'
            cand members 'List, add and remove members, or change their role'
        }
        &'wanllmdb;help;project;create'= {
        }
        &'wanllmdb;help;project;list'= {
        }
        &'wanllmdb;help;project;show'= {
        }
        &'wanllmdb;help;project;delete'= {
        }
        &'wanllmdb;help;project;members'= {
            cand list 'List members and their roles'
            cand add 'Add a user with a role'
            cand remove 'Remove a user'
            cand role 'Change a user''s role'
        }
        &'wanllmdb;help;project;members;list'= {
        }
        &'wanllmdb;help;project;members;add'= {
        }
        &'wanllmdb;help;project;members;remove'= {
        }
        &'wanllmdb;help;project;members;role'= {
        }
        &'wanllmdb;help;run'= {
        }
        &'wanllmdb;help;log'= {
        }
        &'wanllmdb;help;sync'= {
        }
        &'wanllmdb;help;import'= {
            cand tensorboard 'TensorBoard event files: each directory of them a run, each scalar tag a metric'
            cand mlflow 'A running MLflow server: experiments, runs, metrics, artifacts, registered models'
        }
        &'wanllmdb;help;import;tensorboard'= {
        }
        &'wanllmdb;help;import;mlflow'= {
        }
        &'wanllmdb;help;export'= {
            cand mlflow 'To an MLflow server: a project''s runs, metrics, files and registered models'
        }
        &'wanllmdb;help;export;mlflow'= {
        }
        &'wanllmdb;help;runs'= {
            cand list 'List runs of a project, newest first'
            cand show 'Show one run: state, config, git, host and metric summary'
            cand compare 'Compare runs side by side: config differences and summary metrics'
            cand history 'Print a run''s metric history'
            cand plot 'Draw runs'' metrics in the terminal (Braille characters at the terminal''s width)'
            cand tag 'Add or remove tags'
            cand notes 'Replace a run''s notes'
            cand stop 'Ask a running run to stop (its wrapper stops the program at the next heartbeat)'
            cand delete 'Delete a run with its metrics and logs'
        }
        &'wanllmdb;help;runs;list'= {
        }
        &'wanllmdb;help;runs;show'= {
        }
        &'wanllmdb;help;runs;compare'= {
        }
        &'wanllmdb;help;runs;history'= {
        }
        &'wanllmdb;help;runs;plot'= {
        }
        &'wanllmdb;help;runs;tag'= {
        }
        &'wanllmdb;help;runs;notes'= {
        }
        &'wanllmdb;help;runs;stop'= {
        }
        &'wanllmdb;help;runs;delete'= {
        }
        &'wanllmdb;help;logs'= {
        }
        &'wanllmdb;help;open'= {
        }
        &'wanllmdb;help;files'= {
            cand put 'Attach files or directories to a run (only bytes the server lacks are sent)'
            cand get 'Download a run''s files (all, or the paths given), checking every SHA-256'
            cand list 'List a run''s files'
            cand delete 'Detach files from a run'
        }
        &'wanllmdb;help;files;put'= {
        }
        &'wanllmdb;help;files;get'= {
        }
        &'wanllmdb;help;files;list'= {
        }
        &'wanllmdb;help;files;delete'= {
        }
        &'wanllmdb;help;artifact'= {
            cand put 'Log files, directories and references as a new version of an artifact'
            cand get 'Download a version, checking every digest (content already cached is copied locally)'
            cand ls 'List a project''s artifacts'
            cand versions 'List the versions of an artifact, newest first'
            cand show 'Show a version: details, aliases, files and lineage'
            cand lineage 'Where a version came from (the runs and inputs upstream) and what was made with it, as trees'
            cand alias 'Point an alias at a version, or remove it with --remove'
            cand aliases 'List an artifact''s aliases (latest included) and the versions they point at'
            cand cache 'Show where the local content cache is and how much it holds; --clear empties it (`wanllmdb cache` shows its size limit and prunes it)'
            cand ref 'Log a version made of references to s3://, gs:// or https:// objects'
            cand update 'Change an artifact''s description, tags or metadata (a version''s files never change)'
            cand delete 'Delete an artifact with all its versions and aliases'
        }
        &'wanllmdb;help;artifact;put'= {
        }
        &'wanllmdb;help;artifact;get'= {
        }
        &'wanllmdb;help;artifact;ls'= {
        }
        &'wanllmdb;help;artifact;versions'= {
        }
        &'wanllmdb;help;artifact;show'= {
        }
        &'wanllmdb;help;artifact;lineage'= {
        }
        &'wanllmdb;help;artifact;alias'= {
        }
        &'wanllmdb;help;artifact;aliases'= {
        }
        &'wanllmdb;help;artifact;cache'= {
        }
        &'wanllmdb;help;artifact;ref'= {
        }
        &'wanllmdb;help;artifact;update'= {
        }
        &'wanllmdb;help;artifact;delete'= {
        }
        &'wanllmdb;help;sweep'= {
            cand create 'Create a sweep from a YAML or JSON config (W&B''s sweep format)'
            cand validate 'Check a config without creating anything; lists every problem with its path'
            cand list 'List the sweeps of the project'
            cand show 'Show a sweep: state, counts, best run, top runs, parameter importance'
            cand trials 'List every trial of a sweep with its parameters and value'
            cand suggest 'Manual mode: reserve the next parameters and a run id to start yourself'
            cand pause 'Stop handing out new runs; running ones go on'
            cand resume 'Hand out runs again after a pause'
            cand finish 'End the sweep: no new runs; running ones finish'
            cand cancel 'End the sweep and stop its running runs'
            cand delete 'Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)'
            cand retry-failed 'Queue every crashed run to be tried again with the same parameters'
            cand agent 'Run trials of a sweep here until it is done (or --count runs)'
        }
        &'wanllmdb;help;sweep;create'= {
        }
        &'wanllmdb;help;sweep;validate'= {
        }
        &'wanllmdb;help;sweep;list'= {
        }
        &'wanllmdb;help;sweep;show'= {
        }
        &'wanllmdb;help;sweep;trials'= {
        }
        &'wanllmdb;help;sweep;suggest'= {
        }
        &'wanllmdb;help;sweep;pause'= {
        }
        &'wanllmdb;help;sweep;resume'= {
        }
        &'wanllmdb;help;sweep;finish'= {
        }
        &'wanllmdb;help;sweep;cancel'= {
        }
        &'wanllmdb;help;sweep;delete'= {
        }
        &'wanllmdb;help;sweep;retry-failed'= {
        }
        &'wanllmdb;help;sweep;agent'= {
        }
        &'wanllmdb;help;model'= {
            cand register 'Register a model in the project (model names are unique on the server)'
            cand ls 'List registered models: those of the project, or every one you can read with --all'
            cand show 'Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)'
            cand versions 'List a model''s versions, newest first'
            cand version 'Create or delete model versions'
            cand transition 'Move a version to another stage (Production may need an approval first)'
            cand approve 'Approve a version for Production (project admins and owners), or --revoke the approval'
            cand alias 'Point an alias at a version, or remove one with --remove ALIAS'
            cand history 'Who did what to a model (or to one version), oldest first'
            cand update 'Change a model''s description, tags or approval setting'
            cand delete 'Delete a model with all its versions, aliases and history (project admins)'
            cand policy 'Show the project''s registry policy, or change it (project admins)'
            cand download 'Download a model version''s files, checking every digest (as `artifact get` does)'
        }
        &'wanllmdb;help;model;register'= {
        }
        &'wanllmdb;help;model;ls'= {
        }
        &'wanllmdb;help;model;show'= {
        }
        &'wanllmdb;help;model;versions'= {
        }
        &'wanllmdb;help;model;version'= {
            cand create 'Register an artifact version as the next version of a model'
            cand delete 'Delete a version (project admins); its artifact version stays'
        }
        &'wanllmdb;help;model;version;create'= {
        }
        &'wanllmdb;help;model;version;delete'= {
        }
        &'wanllmdb;help;model;transition'= {
        }
        &'wanllmdb;help;model;approve'= {
        }
        &'wanllmdb;help;model;alias'= {
        }
        &'wanllmdb;help;model;history'= {
        }
        &'wanllmdb;help;model;update'= {
        }
        &'wanllmdb;help;model;delete'= {
        }
        &'wanllmdb;help;model;policy'= {
        }
        &'wanllmdb;help;model;download'= {
        }
        &'wanllmdb;help;admin'= {
            cand gc 'Delete stored file contents nothing refers to any more (server administrators only)'
            cand user 'Accounts: list, show, create, disable, enable, reset passwords, promote, demote (server administrators only)'
            cand api-key 'Every account''s API keys: list and revoke (server administrators only)'
            cand status 'The server''s version, uptime, CPU, memory, disk, database and blob store (server administrators only)'
            cand backup 'Write a consistent backup of the server''s database and local blobs to one file, while the server keeps running (reads the storage directly; no login needed)'
            cand restore 'Restore a backup into a new data directory (or an empty database and bucket)'
            cand verify 'Check the database''s integrity, every metric chunk''s checksum and every blob''s digest, or a backup file against its manifest; exits with 1 and lists the problems when anything is wrong'
            cand export 'Export everything (tables as JSON lines, blobs as files) into a directory, to import into another backend'
            cand import 'Import an export into an empty database and blob store, then compare counts and checksums with the export'
            cand compact 'Rewrite metric chunks stored in an older format in the current one (with a checksum), working on the storage directly; safe while the server runs'
        }
        &'wanllmdb;help;admin;gc'= {
        }
        &'wanllmdb;help;admin;user'= {
            cand list 'List accounts, oldest first'
            cand show 'Show one account'
            cand create 'Create an account; without --password-stdin a strong password is generated and printed once on stdout'
            cand disable 'Disable an account: it cannot log in, and its API keys and sessions are revoked at once'
            cand enable 'Let a disabled account log in again (its revoked API keys stay revoked)'
            cand reset-password 'Set a new password and end the account''s sessions (its API keys are kept)'
            cand promote 'Make an account a server administrator'
            cand demote 'Make a server administrator an ordinary account'
        }
        &'wanllmdb;help;admin;user;list'= {
        }
        &'wanllmdb;help;admin;user;show'= {
        }
        &'wanllmdb;help;admin;user;create'= {
        }
        &'wanllmdb;help;admin;user;disable'= {
        }
        &'wanllmdb;help;admin;user;enable'= {
        }
        &'wanllmdb;help;admin;user;reset-password'= {
        }
        &'wanllmdb;help;admin;user;promote'= {
        }
        &'wanllmdb;help;admin;user;demote'= {
        }
        &'wanllmdb;help;admin;api-key'= {
            cand list 'List active API keys of every account, or of one (never the secrets)'
            cand revoke 'Revoke an API key of any account, by id'
        }
        &'wanllmdb;help;admin;api-key;list'= {
        }
        &'wanllmdb;help;admin;api-key;revoke'= {
        }
        &'wanllmdb;help;admin;status'= {
        }
        &'wanllmdb;help;admin;backup'= {
        }
        &'wanllmdb;help;admin;restore'= {
        }
        &'wanllmdb;help;admin;verify'= {
        }
        &'wanllmdb;help;admin;export'= {
        }
        &'wanllmdb;help;admin;import'= {
        }
        &'wanllmdb;help;admin;compact'= {
        }
        &'wanllmdb;help;audit'= {
            cand logs 'List audit events, newest first; filters combine'
            cand stats 'Event counts of the last hours: by category, severity and outcome, logins and failure rate'
            cand failed-logins 'Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts'
        }
        &'wanllmdb;help;audit;logs'= {
        }
        &'wanllmdb;help;audit;stats'= {
        }
        &'wanllmdb;help;audit;failed-logins'= {
        }
        &'wanllmdb;help;server'= {
        }
        &'wanllmdb;help;cache'= {
            cand info 'Show where the cache is, what it holds and its size limit'
            cand prune 'Remove the least recently used content until the cache is within its limit'
        }
        &'wanllmdb;help;cache;info'= {
        }
        &'wanllmdb;help;cache;prune'= {
        }
        &'wanllmdb;help;completions'= {
        }
        &'wanllmdb;help;generate-docs'= {
        }
        &'wanllmdb;help;guard-program'= {
        }
        &'wanllmdb;help;help'= {
        }
    ]
    $completions[$command]
}
