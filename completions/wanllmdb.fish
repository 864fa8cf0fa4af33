# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_wanllmdb_global_optspecs
    string join \n host= api-key= project= q/quiet v/verbose h/help V/version
end

function __fish_wanllmdb_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_wanllmdb_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_wanllmdb_using_subcommand
    set -l cmd (__fish_wanllmdb_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "login" -d 'Store an API key for a server (checked against it first)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "logout" -d 'Forget the stored API key for a server'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "whoami" -d 'Show who the stored key belongs to, and where it came from'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "auth" -d 'Manage your account: change your password, print the stored API key'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "init" -d 'Write ./.wanllmdb.toml (project, host) and create the project if missing'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "project" -d 'Create, list, show and delete projects; manage members'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "run" -d 'Track a program: wanllmdb run [OPTIONS] -- CMD [ARGS]…'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "log" -d 'Log metrics (KEY=VALUE… or JSON lines on stdin) or a message to a run'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "sync" -d 'Upload spooled runs (offline runs, or what an outage left behind)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "import" -d 'Bring history in from other trackers: an MLflow server, TensorBoard event files'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "export" -d 'Send history to other trackers: a project to an MLflow server'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "runs" -d 'List, inspect, compare and change runs'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "logs" -d 'Print or follow a run\'s output'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "open" -d 'Print the web page of a run or project, and open it on a desktop'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "files" -d 'Attach files to a run, list them, download them'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "artifact" -d 'Version datasets, models and code: put, get, list, alias, reference, lineage'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "sweep" -d 'Hyperparameter sweeps (W&B-format configs): create, run agents, inspect, control'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "model" -d 'Model registry: register models, version them, stage, approve, alias, download'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "admin" -d 'Server administration (administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "audit" -d 'Read the audit log: events, failed logins, statistics (administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "server" -d 'Run the tracking server (SQLite + local files by default, or PostgreSQL)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "cache" -d 'The local download cache: its size and limit; prune the least recently used content'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "completions" -d 'Print shell completions (bash, zsh, fish, elvish, powershell)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "generate-docs" -d 'Write completions/ and man/ into a directory (used to refresh the repository\'s copies)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "guard-program" -d 'Run a program under a guard that stops it when the wrapper dies (the wrapper uses this)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand login" -l username -d 'Sign in with this account\'s password and create an API key for this machine' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand login" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand login" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand login" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand login" -l password-stdin -d 'Read the password from stdin (for scripts)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand login" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand login" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand login" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand login" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logout" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logout" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logout" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logout" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logout" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logout" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logout" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand whoami" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand whoami" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand whoami" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand whoami" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand whoami" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand whoami" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand whoami" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand whoami" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -f -a "passwd" -d 'Change your password; your other sessions end, API keys keep working'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -f -a "token" -d 'Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and not __fish_seen_subcommand_from passwd token help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from passwd" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from passwd" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from passwd" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from passwd" -l password-stdin -d 'Read the current password, then the new one, from stdin, one per line (for scripts)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from passwd" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from passwd" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from passwd" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from token" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from token" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from token" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from token" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from token" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from token" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from token" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Change your password; your other sessions end, API keys keep working'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from help" -f -a "token" -d 'Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand auth; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand init" -l scalars -d 'Also capture `key: value` numbers from output lines matching this regex in `wanllmdb run`' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand init" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand init" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand init" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand init" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand init" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand init" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand init" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -f -a "create" -d 'Create a project'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -f -a "list" -d 'List the projects you can see'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -f -a "show" -d 'Show a project and its statistics'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -f -a "delete" -d 'Delete a project and all its runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -f -a "members" -d 'List, add and remove members, or change their role'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and not __fish_seen_subcommand_from create list show delete members help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -l description -d 'What the project is about' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -l visibility -d 'Who can see it' -r -f -a "public\t'Anyone with an account can read it'
private\t'Only members can see it'"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -l search -d 'Only names containing this text' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -l limit -d 'At most this many' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from show" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from show" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from show" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from delete" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from delete" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from delete" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -f -a "list" -d 'List members and their roles'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -f -a "add" -d 'Add a user with a role'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -f -a "remove" -d 'Remove a user'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -f -a "role" -d 'Change a user\'s role'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from members" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a project'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the projects you can see'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a project and its statistics'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a project and all its runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "members" -d 'List, add and remove members, or change their role'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand project; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l name -d 'Display name of the run [default: the run id]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l id -d 'Run id (8 characters of a-z and 0-9); an existing id in the project is resumed' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l tag -d 'Tag the run (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l notes -d 'Notes about the run' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l group -d 'Group runs that belong together (e.g. workers of one job)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l job-type -d 'Kind of job, e.g. train or eval' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l config -d 'Hyperparameters: a .yaml/.json file or KEY=VALUE (dotted keys nest); repeatable, later wins' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l scalars -d 'Also record `key: value` / `key=value` numbers from output lines matching this regex' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l sync-timeout -d 'After the program ends, how long to keep trying an unreachable server before leaving the rest to `wanllmdb sync`' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l save -d 'Attach files matching this glob to the run when it ends (repeatable; directories recursively)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l offline -d 'Do not contact the server; upload later with `wanllmdb sync`'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -l no-system-metrics -d 'Record no system/… metrics (CPU, memory, GPUs every 15 s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand run" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -l run -d 'Run id [default: the wrapped run, $WANLLMDB_RUN_ID]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -l step -d 'Step of these values' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -s m -l message -d 'Log this text as a log line instead of metrics' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -l level -d 'Level of --message: debug, info, warning or error' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand log" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -s j -l jobs -d 'Runs uploaded at the same time' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -l dry-run -d 'Only list what would be uploaded'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sync" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -f -a "tensorboard" -d 'TensorBoard event files: each directory of them a run, each scalar tag a metric'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -f -a "mlflow" -d 'A running MLflow server: experiments, runs, metrics, artifacts, registered models'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and not __fish_seen_subcommand_from tensorboard mlflow help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from tensorboard" -s p -l project -d 'The project to import into (created if missing) [default: from .wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from tensorboard" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from tensorboard" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from tensorboard" -l dry-run -d 'Only read the files and print what would be imported'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from tensorboard" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from tensorboard" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from tensorboard" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from tensorboard" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from tensorboard" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -l from -d 'The MLflow server\'s URL (its MLFLOW_TRACKING_URI)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -l experiments -d 'Only these experiments (by name) [default: every active experiment]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -l source-token -d 'A token for the MLflow server [default: MLFLOW_TRACKING_TOKEN]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -l no-models -d 'Leave out registered models'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from mlflow" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "tensorboard" -d 'TensorBoard event files: each directory of them a run, each scalar tag a metric'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "mlflow" -d 'A running MLflow server: experiments, runs, metrics, artifacts, registered models'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand import; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and not __fish_seen_subcommand_from mlflow help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and not __fish_seen_subcommand_from mlflow help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and not __fish_seen_subcommand_from mlflow help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and not __fish_seen_subcommand_from mlflow help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and not __fish_seen_subcommand_from mlflow help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and not __fish_seen_subcommand_from mlflow help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and not __fish_seen_subcommand_from mlflow help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and not __fish_seen_subcommand_from mlflow help" -f -a "mlflow" -d 'To an MLflow server: a project\'s runs, metrics, files and registered models'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and not __fish_seen_subcommand_from mlflow help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -l to -d 'The MLflow server\'s URL (its MLFLOW_TRACKING_URI)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -s p -l project -d 'The project to export [default: from .wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -l token -d 'A token for the MLflow server [default: MLFLOW_TRACKING_TOKEN]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -l no-models -d 'Leave out registered models'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from mlflow" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "mlflow" -d 'To an MLflow server: a project\'s runs, metrics, files and registered models'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand export; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "list" -d 'List runs of a project, newest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "show" -d 'Show one run: state, config, git, host and metric summary'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "compare" -d 'Compare runs side by side: config differences and summary metrics'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "history" -d 'Print a run\'s metric history'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "plot" -d 'Draw runs\' metrics in the terminal (Braille characters at the terminal\'s width)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "tag" -d 'Add or remove tags'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "notes" -d 'Replace a run\'s notes'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "stop" -d 'Ask a running run to stop (its wrapper stops the program at the next heartbeat)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "delete" -d 'Delete a run with its metrics and logs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and not __fish_seen_subcommand_from list show compare history plot tag notes stop delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l state -d 'Only runs in this state: running, finished, crashed, killed' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l tag -d 'Only runs with this tag (repeatable: all must match)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l search -d 'Only runs whose name or id contains this text' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l filter -d 'Filter expression, e.g. \'summary.acc >= 0.9\' (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l sort -d 'Sort key, `-` for descending: created_at, name, state, config.X, summary.X' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l limit -d 'At most this many runs' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l columns -d 'Columns: id, name, state, user, created, finished, tags, group, job_type, host, exit_code, notes, project, config.X, summary.X' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from show" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from show" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from show" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -l keys -d 'Only these summary metrics' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -l all -d 'Also show config values that are equal in every run'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from compare" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -l keys -d 'Only these metrics (comma-separated) [default: all]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -l format -d 'csv (one row per step, one column per metric) or json (the API\'s columnar answer)' -r -f -a "csv\t'Comma-separated values'
json\t'JSON'"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -l max-points -d 'Downsample each metric to at most this many buckets (each bucket\'s last value; json adds min and max)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -l min-step -d 'From this step' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -l max-step -d 'Up to this step' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from history" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -l keys -d 'Metrics to plot (comma-separated), one chart each' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -l width -d 'Width in characters [default: the terminal\'s]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -l height -d 'Height of each chart in lines' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from plot" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from tag" -l add -d 'Tag to add (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from tag" -l remove -d 'Tag to remove (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from tag" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from tag" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from tag" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from tag" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from tag" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from tag" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from tag" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from notes" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from notes" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from notes" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from notes" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from notes" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from notes" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from notes" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from stop" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from stop" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from stop" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from stop" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from stop" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from stop" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from delete" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from delete" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from delete" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "list" -d 'List runs of a project, newest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one run: state, config, git, host and metric summary'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "compare" -d 'Compare runs side by side: config differences and summary metrics'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "history" -d 'Print a run\'s metric history'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "plot" -d 'Draw runs\' metrics in the terminal (Braille characters at the terminal\'s width)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "tag" -d 'Add or remove tags'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "notes" -d 'Replace a run\'s notes'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "stop" -d 'Ask a running run to stop (its wrapper stops the program at the next heartbeat)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a run with its metrics and logs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -l level -d 'Minimum level: debug, info, warning, error' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -l source -d 'Only lines from stdout, stderr, sdk or user' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -l grep -d 'Only lines containing this text (case-insensitive)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -l format -d 'txt (time, level, source, message), json or csv' -r -f -a "txt\t'One line per log line: time, level, source, message'
json\t'JSON (an array; one object per line with --follow)'
csv\t'Comma-separated values'"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -s f -l follow -d 'Keep printing new lines until the run ends'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand logs" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand open" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand open" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand open" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand open" -l print -d 'Only print the URL, even on a desktop'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand open" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand open" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand open" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand open" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -f -a "put" -d 'Attach files or directories to a run (only bytes the server lacks are sent)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -f -a "get" -d 'Download a run\'s files (all, or the paths given), checking every SHA-256'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -f -a "list" -d 'List a run\'s files'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -f -a "delete" -d 'Detach files from a run'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and not __fish_seen_subcommand_from put get list delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from put" -l prefix -d 'Store under this directory on the server' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from put" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from put" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from put" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from put" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from put" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from put" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from put" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from put" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from get" -l dir -d 'Directory to write into' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from get" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from get" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from get" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from list" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from list" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from list" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from delete" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from delete" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from delete" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from help" -f -a "put" -d 'Attach files or directories to a run (only bytes the server lacks are sent)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from help" -f -a "get" -d 'Download a run\'s files (all, or the paths given), checking every SHA-256'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from help" -f -a "list" -d 'List a run\'s files'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Detach files from a run'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand files; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "put" -d 'Log files, directories and references as a new version of an artifact'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "get" -d 'Download a version, checking every digest (content already cached is copied locally)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "ls" -d 'List a project\'s artifacts'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "versions" -d 'List the versions of an artifact, newest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "show" -d 'Show a version: details, aliases, files and lineage'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "lineage" -d 'Where a version came from (the runs and inputs upstream) and what was made with it, as trees'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "alias" -d 'Point an alias at a version, or remove it with --remove'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "aliases" -d 'List an artifact\'s aliases (latest included) and the versions they point at'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "cache" -d 'Show where the local content cache is and how much it holds; --clear empties it (`wanllmdb cache` shows its size limit and prunes it)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "ref" -d 'Log a version made of references to s3://, gs:// or https:// objects'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "update" -d 'Change an artifact\'s description, tags or metadata (a version\'s files never change)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "delete" -d 'Delete an artifact with all its versions and aliases'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and not __fish_seen_subcommand_from put get ls versions show lineage alias aliases cache ref update delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l name -d 'Artifact name (NAME, or PROJECT/NAME)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l type -d 'Type: model, dataset, file, code or any other word (needed for a new artifact)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l alias -d 'Point this alias at the new version (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l description -d 'Description of the version' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l metadata -d 'KEY=VALUE metadata of the version (values parsed as JSON when they can be; repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l run -d 'Run that produced it [default: $WANLLMDB_RUN_ID inside `wanllmdb run`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from put" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -l dir -d 'Directory to write into [default: ./artifacts/NAME/vN]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -l run -d 'Record this run as a user of the version [default: $WANLLMDB_RUN_ID]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -l cache-max-size -d 'Most the local cache keeps; after the download the least recently used content goes: 20GiB, 500MB, 10% (of its disk), 0 or unlimited [default: `cache_max_size` in the user config, else 10% of the disk, at most 50 GiB]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -l no-cache -d 'Download without keeping a copy in the local cache'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from get" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ls" -l type -d 'Only this type' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ls" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ls" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ls" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ls" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ls" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from versions" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from versions" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from versions" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from versions" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from versions" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from versions" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from versions" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from versions" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from show" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from show" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from show" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from lineage" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from lineage" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from lineage" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from lineage" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from lineage" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from lineage" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from lineage" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from lineage" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from alias" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from alias" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from alias" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from alias" -l remove -d 'Remove the alias instead'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from alias" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from alias" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from alias" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from alias" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from aliases" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from aliases" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from aliases" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from aliases" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from aliases" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from aliases" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from aliases" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from aliases" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from cache" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from cache" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from cache" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from cache" -l clear -d 'Delete everything in the cache'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from cache" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from cache" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from cache" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from cache" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -l type -d 'Type (needed for a new artifact)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -l alias -d 'Point this alias at the new version (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from ref" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -l description -d 'New description' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -l tag -d 'Replace the tags with these (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -l metadata -d 'Set these KEY=VALUE pairs in the metadata, keeping the other keys; KEY=null removes one (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -l clear-tags -d 'Remove all tags'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from delete" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from delete" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from delete" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "put" -d 'Log files, directories and references as a new version of an artifact'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "get" -d 'Download a version, checking every digest (content already cached is copied locally)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List a project\'s artifacts'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "versions" -d 'List the versions of an artifact, newest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a version: details, aliases, files and lineage'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "lineage" -d 'Where a version came from (the runs and inputs upstream) and what was made with it, as trees'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "alias" -d 'Point an alias at a version, or remove it with --remove'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "aliases" -d 'List an artifact\'s aliases (latest included) and the versions they point at'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "cache" -d 'Show where the local content cache is and how much it holds; --clear empties it (`wanllmdb cache` shows its size limit and prunes it)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "ref" -d 'Log a version made of references to s3://, gs:// or https:// objects'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "update" -d 'Change an artifact\'s description, tags or metadata (a version\'s files never change)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete an artifact with all its versions and aliases'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand artifact; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "create" -d 'Create a sweep from a YAML or JSON config (W&B\'s sweep format)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "validate" -d 'Check a config without creating anything; lists every problem with its path'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "list" -d 'List the sweeps of the project'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "show" -d 'Show a sweep: state, counts, best run, top runs, parameter importance'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "trials" -d 'List every trial of a sweep with its parameters and value'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "suggest" -d 'Manual mode: reserve the next parameters and a run id to start yourself'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "pause" -d 'Stop handing out new runs; running ones go on'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "resume" -d 'Hand out runs again after a pause'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "finish" -d 'End the sweep: no new runs; running ones finish'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "cancel" -d 'End the sweep and stop its running runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "delete" -d 'Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "retry-failed" -d 'Queue every crashed run to be tried again with the same parameters'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "agent" -d 'Run trials of a sweep here until it is done (or --count runs)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and not __fish_seen_subcommand_from create validate list show trials suggest pause resume finish cancel delete retry-failed agent help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from create" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from create" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from create" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from create" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from create" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from create" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from create" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from validate" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from validate" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from validate" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from validate" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from validate" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from validate" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from validate" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from list" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from list" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from list" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from list" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from show" -l top -d 'Rows of the top-runs table' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from show" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from show" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from show" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from trials" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from trials" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from trials" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from trials" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from trials" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from trials" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from trials" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from trials" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from suggest" -l write -d 'Also write the (nested) parameters to this JSON file' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from suggest" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from suggest" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from suggest" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from suggest" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from suggest" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from suggest" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from suggest" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from suggest" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from pause" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from pause" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from pause" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from pause" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from pause" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from pause" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from pause" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from resume" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from resume" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from resume" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from resume" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from resume" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from resume" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from finish" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from finish" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from finish" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from finish" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from finish" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from finish" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from finish" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from cancel" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from cancel" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from cancel" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from cancel" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from cancel" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from cancel" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from cancel" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from delete" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from delete" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from delete" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from delete" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from retry-failed" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from retry-failed" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from retry-failed" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from retry-failed" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from retry-failed" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from retry-failed" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from retry-failed" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -l count -d 'Run at most this many trials, then exit' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -l grace -d 'Seconds between SIGTERM and SIGKILL when a run is stopped' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -l no-system-metrics -d 'Record no system/… metrics for the runs (CPU, memory, GPUs every 15 s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from agent" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a sweep from a YAML or JSON config (W&B\'s sweep format)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "validate" -d 'Check a config without creating anything; lists every problem with its path'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the sweeps of the project'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a sweep: state, counts, best run, top runs, parameter importance'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "trials" -d 'List every trial of a sweep with its parameters and value'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "suggest" -d 'Manual mode: reserve the next parameters and a run id to start yourself'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "pause" -d 'Stop handing out new runs; running ones go on'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Hand out runs again after a pause'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "finish" -d 'End the sweep: no new runs; running ones finish'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "cancel" -d 'End the sweep and stop its running runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "retry-failed" -d 'Queue every crashed run to be tried again with the same parameters'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "agent" -d 'Run trials of a sweep here until it is done (or --count runs)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand sweep; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "register" -d 'Register a model in the project (model names are unique on the server)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "ls" -d 'List registered models: those of the project, or every one you can read with --all'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "show" -d 'Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "versions" -d 'List a model\'s versions, newest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "version" -d 'Create or delete model versions'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "transition" -d 'Move a version to another stage (Production may need an approval first)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "approve" -d 'Approve a version for Production (project admins and owners), or --revoke the approval'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "alias" -d 'Point an alias at a version, or remove one with --remove ALIAS'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "history" -d 'Who did what to a model (or to one version), oldest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "update" -d 'Change a model\'s description, tags or approval setting'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "delete" -d 'Delete a model with all its versions, aliases and history (project admins)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "policy" -d 'Show the project\'s registry policy, or change it (project admins)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "download" -d 'Download a model version\'s files, checking every digest (as `artifact get` does)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and not __fish_seen_subcommand_from register ls show versions version transition approve alias history update delete policy download help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -l description -d 'Free text' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -l tag -d 'Tag (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -l require-approval -d 'Whether Production needs an approval [default: the project\'s policy]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from register" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -l search -d 'Only models whose name or description contains this' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -l all -d 'Models of every project you can read, not just the current one'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from ls" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from show" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from show" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from show" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from show" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from versions" -l stage -d 'Only versions in this stage' -r -f -a "Staging\t''
Production\t''
Archived\t''
None\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from versions" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from versions" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from versions" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from versions" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from versions" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from versions" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from versions" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from versions" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -f -a "create" -d 'Register an artifact version as the next version of a model'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -f -a "delete" -d 'Delete a version (project admins); its artifact version stays'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from version" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -l to -d 'Stage to move to: Staging, Production, Archived or None' -r -f -a "Staging\t''
Production\t''
Archived\t''
None\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -s m -l comment -d 'Why (kept in the history)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -l archive-existing -d 'Into Production or Staging: archive the versions already in that stage'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from transition" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -s m -l comment -d 'Why (kept in the history)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -l revoke -d 'Withdraw the approval instead'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from approve" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -l remove -d 'Remove this alias instead' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -s m -l comment -d 'Why (kept in the history)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from alias" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from history" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from history" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from history" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from history" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from history" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from history" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from history" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from history" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -l description -d 'New description' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -l tag -d 'Replace the tags with these (repeatable)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -l require-approval -d 'Whether Production needs an approval for this model' -r -f -a "true\t'Production needs an approval'
false\t'Production needs no approval'
project\t'Follow the project\'s policy'"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -l clear-tags -d 'Remove all tags'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from update" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from delete" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from delete" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from delete" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from delete" -s y -l yes -d 'Do not ask for confirmation'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from delete" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from delete" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from delete" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -l require-approval -d 'Production needs an approval' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -l allow-self-approval -d 'The creator of a version may approve it' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from policy" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -l dir -d 'Directory to write into [default: ./models/NAME/vN]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -l run -d 'Record this run as a user of the files [default: $WANLLMDB_RUN_ID]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -l cache-max-size -d 'Most the local cache keeps; after the download the least recently used content goes: 20GiB, 500MB, 10% (of its disk), 0 or unlimited [default: `cache_max_size` in the user config, else 10% of the disk, at most 50 GiB]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -l no-cache -d 'Download without keeping a copy in the local cache'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from download" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "register" -d 'Register a model in the project (model names are unique on the server)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "ls" -d 'List registered models: those of the project, or every one you can read with --all'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "versions" -d 'List a model\'s versions, newest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "version" -d 'Create or delete model versions'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "transition" -d 'Move a version to another stage (Production may need an approval first)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "approve" -d 'Approve a version for Production (project admins and owners), or --revoke the approval'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "alias" -d 'Point an alias at a version, or remove one with --remove ALIAS'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "history" -d 'Who did what to a model (or to one version), oldest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "update" -d 'Change a model\'s description, tags or approval setting'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a model with all its versions, aliases and history (project admins)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "policy" -d 'Show the project\'s registry policy, or change it (project admins)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "download" -d 'Download a model version\'s files, checking every digest (as `artifact get` does)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand model; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "gc" -d 'Delete stored file contents nothing refers to any more (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "user" -d 'Accounts: list, show, create, disable, enable, reset passwords, promote, demote (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "api-key" -d 'Every account\'s API keys: list and revoke (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "status" -d 'The server\'s version, uptime, CPU, memory, disk, database and blob store (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "backup" -d 'Write a consistent backup of the server\'s database and local blobs to one file, while the server keeps running (reads the storage directly; no login needed)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "restore" -d 'Restore a backup into a new data directory (or an empty database and bucket)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "verify" -d 'Check the database\'s integrity, every metric chunk\'s checksum and every blob\'s digest, or a backup file against its manifest; exits with 1 and lists the problems when anything is wrong'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "export" -d 'Export everything (tables as JSON lines, blobs as files) into a directory, to import into another backend'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "import" -d 'Import an export into an empty database and blob store, then compare counts and checksums with the export'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "compact" -d 'Rewrite metric chunks stored in an older format in the current one (with a checksum), working on the storage directly; safe while the server runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and not __fish_seen_subcommand_from gc user api-key status backup restore verify export import compact help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from gc" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from gc" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from gc" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from gc" -l dry-run -d 'Only report what would be deleted'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from gc" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from gc" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from gc" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from gc" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from gc" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -f -a "list" -d 'List accounts, oldest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -f -a "show" -d 'Show one account'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -f -a "create" -d 'Create an account; without --password-stdin a strong password is generated and printed once on stdout'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -f -a "disable" -d 'Disable an account: it cannot log in, and its API keys and sessions are revoked at once'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -f -a "enable" -d 'Let a disabled account log in again (its revoked API keys stay revoked)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -f -a "reset-password" -d 'Set a new password and end the account\'s sessions (its API keys are kept)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -f -a "promote" -d 'Make an account a server administrator'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -f -a "demote" -d 'Make a server administrator an ordinary account'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from user" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -f -a "list" -d 'List active API keys of every account, or of one (never the secrets)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -f -a "revoke" -d 'Revoke an API key of any account, by id'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from api-key" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from status" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from status" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from status" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from status" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from status" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from status" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -s o -l out -d 'The archive to write (must not exist yet)' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l data-dir -d 'Directory for the SQLite database, files and the admin key [default: the platform data directory]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l database-url -d 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l storage-url -d 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l s3-endpoint -d 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l s3-region -d 'S3 region [default: AWS_REGION, else us-east-1]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l s3-path-style -d 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l config -d 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from backup" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l data-dir -d 'Directory for the SQLite database, files and the admin key [default: the platform data directory]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l database-url -d 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l storage-url -d 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l s3-endpoint -d 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l s3-region -d 'S3 region [default: AWS_REGION, else us-east-1]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l s3-path-style -d 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l config -d 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from restore" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l backup -d 'Check this backup archive against its manifest instead of the server\'s storage' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l data-dir -d 'Directory for the SQLite database, files and the admin key [default: the platform data directory]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l database-url -d 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l storage-url -d 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l s3-endpoint -d 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l s3-region -d 'S3 region [default: AWS_REGION, else us-east-1]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l s3-path-style -d 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l config -d 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from verify" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -s o -l out -d 'The directory to write (must be empty or absent)' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l data-dir -d 'Directory for the SQLite database, files and the admin key [default: the platform data directory]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l database-url -d 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l storage-url -d 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l s3-endpoint -d 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l s3-region -d 'S3 region [default: AWS_REGION, else us-east-1]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l s3-path-style -d 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l config -d 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from export" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l data-dir -d 'Directory for the SQLite database, files and the admin key [default: the platform data directory]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l database-url -d 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l storage-url -d 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l s3-endpoint -d 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l s3-region -d 'S3 region [default: AWS_REGION, else us-east-1]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l s3-path-style -d 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l config -d 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from import" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l data-dir -d 'Directory for the SQLite database, files and the admin key [default: the platform data directory]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l database-url -d 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l storage-url -d 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l s3-endpoint -d 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l s3-region -d 'S3 region [default: AWS_REGION, else us-east-1]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l s3-path-style -d 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l config -d 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from compact" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "gc" -d 'Delete stored file contents nothing refers to any more (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "user" -d 'Accounts: list, show, create, disable, enable, reset passwords, promote, demote (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "api-key" -d 'Every account\'s API keys: list and revoke (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "status" -d 'The server\'s version, uptime, CPU, memory, disk, database and blob store (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "backup" -d 'Write a consistent backup of the server\'s database and local blobs to one file, while the server keeps running (reads the storage directly; no login needed)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "restore" -d 'Restore a backup into a new data directory (or an empty database and bucket)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check the database\'s integrity, every metric chunk\'s checksum and every blob\'s digest, or a backup file against its manifest; exits with 1 and lists the problems when anything is wrong'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "export" -d 'Export everything (tables as JSON lines, blobs as files) into a directory, to import into another backend'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "import" -d 'Import an export into an empty database and blob store, then compare counts and checksums with the export'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "compact" -d 'Rewrite metric chunks stored in an older format in the current one (with a checksum), working on the storage directly; safe while the server runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand admin; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -f -a "logs" -d 'List audit events, newest first; filters combine'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -f -a "stats" -d 'Event counts of the last hours: by category, severity and outcome, logins and failure rate'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -f -a "failed-logins" -d 'Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and not __fish_seen_subcommand_from logs stats failed-logins help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l event-category -l category -d 'Only these categories: authentication, authorization, data_modification, data_access, security' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l event-type -l type -d 'Only this event type, e.g. auth.login.failed, project.delete, or a short name such as login_failure' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l severity -d 'Only these severities: critical, high, medium, low, info' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l user -d 'Only events of this user (a user id or a username)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l user-id -d 'Only events of the user with this id' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l username -d 'Only events of this username, and failed logins that tried it' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l resource-type -d 'Only this kind of object, e.g. project, run, user, model_version' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l resource-id -d 'Only this object, e.g. mnist' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l resource -d 'Only this object as kind:id, e.g. project:mnist' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l status -d 'Only this outcome: success, failure or error; a number is the HTTP status' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l start-date -l since -d 'From this time on (a date, RFC 3339, Unix seconds, or an age such as 24h)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l end-date -l until -d 'Up to this time (a date includes its whole day)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l hours -d 'Only the last this many hours' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l limit -d 'At most this many events [default: 100; csv: all]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l format -d 'table, json (an array; one object per line with --follow) or csv' -r -f -a "table\t'A table for people'
json\t'The API\'s JSON objects'
csv\t'Comma-separated values with a header row'"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -s f -l follow -d 'After the matching events, print new ones as they happen until Ctrl-C'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from logs" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from stats" -l hours -d 'The window: the last this many hours' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from stats" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from stats" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from stats" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from stats" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from stats" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from stats" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from stats" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from stats" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -l hours -d 'The window: the last this many hours' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -l limit -d 'At most this many attempts (1–1000)' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from failed-logins" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "logs" -d 'List audit events, newest first; filters combine'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "stats" -d 'Event counts of the last hours: by category, severity and outcome, logins and failure rate'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "failed-logins" -d 'Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l bind -d 'Address and port to listen on [default: 127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l metrics-bind -d 'Serve /metrics on this address only (e.g. 127.0.0.1:9090), so it can stay off the network the API is on [default: /metrics is served on --bind]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l public-url -d 'The server\'s URL as clients reach it (e.g. https://ml.example.com behind a proxy), used in the absolute upload and download URLs it hands out [default: from each request\'s Host]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l s3-public-endpoint -d 'The S3 endpoint as clients reach it, when it differs from --s3-endpoint (e.g. the server reaches http://minio:9000 but clients https://minio.example.com): presigned URLs are signed for it [default: --s3-endpoint]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l data-dir -d 'Directory for the SQLite database, files and the admin key [default: the platform data directory]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l database-url -d 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l storage-url -d 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l s3-endpoint -d 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l s3-region -d 'S3 region [default: AWS_REGION, else us-east-1]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l s3-path-style -d 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l config -d 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l max-body-bytes -d 'Largest accepted request body in bytes, after decompression [default: 67108864]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l max-inflight-body-bytes -d 'Request body bytes all requests together may hold in memory; past it requests are answered 503 with Retry-After [default: 268435456]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l max-run-config-bytes -d 'Largest run config in bytes of JSON; a larger one is refused with 413 [default: 1048576]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l header-timeout -d 'Seconds a connection may take to send a request\'s headers; also how long an idle keep-alive connection is kept open [default: 30]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l body-timeout -d 'Seconds a request body may pause before the request is dropped with 408 [default: 30]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l log-format -d 'Log lines as text or as JSON objects, one per line (one per request, plus events) [default: text]' -r -f -a "text\t'One line of text per event'
json\t'One JSON object per line'"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l heartbeat-timeout -d 'Seconds without a heartbeat after which a running run is marked crashed [default: 300]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l audit-retention-days -d 'Days to keep audit events; older ones are deleted hourly (0 keeps them forever) [default: 365]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l allow-registration -d 'Let anyone register an account (true) or only administrators create them (false) [default: true]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l jwt-secret -d 'Secret for signing session tokens; generated and kept in the database when unset' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l reference-allow-host -d 'Host that artifact references may point at although it resolves to a private address (an exact name, or .example.com for all its subdomains); repeat or separate with commas' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l trusted-proxy -d 'Reverse proxy (an address or a CIDR network such as 10.0.0.0/8) whose X-Forwarded-For or Forwarded header names the client for audit rows and login limits; repeat or separate with commas. Headers from other peers are ignored [default: none]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -f -a "info" -d 'Show where the cache is, what it holds and its size limit'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -f -a "prune" -d 'Remove the least recently used content until the cache is within its limit'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and not __fish_seen_subcommand_from info prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from info" -l max-size -d 'Show the limit this size would give instead of the configured one' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from info" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from info" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from info" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from info" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from info" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from info" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from info" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from info" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -l max-size -d 'Keep at most this much: 20GiB, 500MB, 10% (of the disk) or 0' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -l all -d 'Remove every entry, whatever the limit'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -l dry-run -d 'Only say what would be removed'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -l json -d 'Print JSON instead of a table: the API\'s own objects, stable and documented'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from prune" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "info" -d 'Show where the cache is, what it holds and its size limit'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "prune" -d 'Remove the least recently used content until the cache is within its limit'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand completions" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand completions" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand completions" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand completions" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand completions" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand completions" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand completions" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand generate-docs" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand generate-docs" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand generate-docs" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand generate-docs" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand generate-docs" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand generate-docs" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand generate-docs" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -l control-fd -d 'The read end of the wrapper\'s pipe' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -l status-file -d 'Where the program\'s end is written: `exit N`, `signal N` or `error KIND MESSAGE`' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -l grace -d 'Seconds between SIGTERM and SIGKILL once the wrapper is gone' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -l host -d 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -l api-key -d 'API key [default: the one stored by `wanllmdb login`]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -l project -d 'Project [default: from ./.wanllmdb.toml]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -l own-group -d 'Start the program in a process group of its own'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -s q -l quiet -d 'Print only data and errors'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -s v -l verbose -d 'Print more about what happens'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand guard-program" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "login" -d 'Store an API key for a server (checked against it first)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "logout" -d 'Forget the stored API key for a server'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "whoami" -d 'Show who the stored key belongs to, and where it came from'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "auth" -d 'Manage your account: change your password, print the stored API key'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "init" -d 'Write ./.wanllmdb.toml (project, host) and create the project if missing'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "project" -d 'Create, list, show and delete projects; manage members'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "run" -d 'Track a program: wanllmdb run [OPTIONS] -- CMD [ARGS]…'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "log" -d 'Log metrics (KEY=VALUE… or JSON lines on stdin) or a message to a run'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "sync" -d 'Upload spooled runs (offline runs, or what an outage left behind)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "import" -d 'Bring history in from other trackers: an MLflow server, TensorBoard event files'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "export" -d 'Send history to other trackers: a project to an MLflow server'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "runs" -d 'List, inspect, compare and change runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "logs" -d 'Print or follow a run\'s output'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "open" -d 'Print the web page of a run or project, and open it on a desktop'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "files" -d 'Attach files to a run, list them, download them'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "artifact" -d 'Version datasets, models and code: put, get, list, alias, reference, lineage'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "sweep" -d 'Hyperparameter sweeps (W&B-format configs): create, run agents, inspect, control'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "model" -d 'Model registry: register models, version them, stage, approve, alias, download'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "admin" -d 'Server administration (administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "audit" -d 'Read the audit log: events, failed logins, statistics (administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "server" -d 'Run the tracking server (SQLite + local files by default, or PostgreSQL)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "cache" -d 'The local download cache: its size and limit; prune the least recently used content'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "completions" -d 'Print shell completions (bash, zsh, fish, elvish, powershell)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "generate-docs" -d 'Write completions/ and man/ into a directory (used to refresh the repository\'s copies)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "guard-program" -d 'Run a program under a guard that stops it when the wrapper dies (the wrapper uses this)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from login logout whoami auth init project run log sync import export runs logs open files artifact sweep model admin audit server cache completions generate-docs guard-program help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from auth" -f -a "passwd" -d 'Change your password; your other sessions end, API keys keep working'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from auth" -f -a "token" -d 'Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "create" -d 'Create a project'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "list" -d 'List the projects you can see'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "show" -d 'Show a project and its statistics'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "delete" -d 'Delete a project and all its runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from project" -f -a "members" -d 'List, add and remove members, or change their role'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "tensorboard" -d 'TensorBoard event files: each directory of them a run, each scalar tag a metric'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from import" -f -a "mlflow" -d 'A running MLflow server: experiments, runs, metrics, artifacts, registered models'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from export" -f -a "mlflow" -d 'To an MLflow server: a project\'s runs, metrics, files and registered models'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "list" -d 'List runs of a project, newest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "show" -d 'Show one run: state, config, git, host and metric summary'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "compare" -d 'Compare runs side by side: config differences and summary metrics'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "history" -d 'Print a run\'s metric history'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "plot" -d 'Draw runs\' metrics in the terminal (Braille characters at the terminal\'s width)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "tag" -d 'Add or remove tags'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "notes" -d 'Replace a run\'s notes'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "stop" -d 'Ask a running run to stop (its wrapper stops the program at the next heartbeat)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "delete" -d 'Delete a run with its metrics and logs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from files" -f -a "put" -d 'Attach files or directories to a run (only bytes the server lacks are sent)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from files" -f -a "get" -d 'Download a run\'s files (all, or the paths given), checking every SHA-256'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from files" -f -a "list" -d 'List a run\'s files'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from files" -f -a "delete" -d 'Detach files from a run'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "put" -d 'Log files, directories and references as a new version of an artifact'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "get" -d 'Download a version, checking every digest (content already cached is copied locally)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "ls" -d 'List a project\'s artifacts'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "versions" -d 'List the versions of an artifact, newest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "show" -d 'Show a version: details, aliases, files and lineage'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "lineage" -d 'Where a version came from (the runs and inputs upstream) and what was made with it, as trees'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "alias" -d 'Point an alias at a version, or remove it with --remove'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "aliases" -d 'List an artifact\'s aliases (latest included) and the versions they point at'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "cache" -d 'Show where the local content cache is and how much it holds; --clear empties it (`wanllmdb cache` shows its size limit and prunes it)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "ref" -d 'Log a version made of references to s3://, gs:// or https:// objects'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "update" -d 'Change an artifact\'s description, tags or metadata (a version\'s files never change)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from artifact" -f -a "delete" -d 'Delete an artifact with all its versions and aliases'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "create" -d 'Create a sweep from a YAML or JSON config (W&B\'s sweep format)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "validate" -d 'Check a config without creating anything; lists every problem with its path'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "list" -d 'List the sweeps of the project'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "show" -d 'Show a sweep: state, counts, best run, top runs, parameter importance'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "trials" -d 'List every trial of a sweep with its parameters and value'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "suggest" -d 'Manual mode: reserve the next parameters and a run id to start yourself'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "pause" -d 'Stop handing out new runs; running ones go on'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "resume" -d 'Hand out runs again after a pause'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "finish" -d 'End the sweep: no new runs; running ones finish'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "cancel" -d 'End the sweep and stop its running runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "delete" -d 'Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "retry-failed" -d 'Queue every crashed run to be tried again with the same parameters'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from sweep" -f -a "agent" -d 'Run trials of a sweep here until it is done (or --count runs)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "register" -d 'Register a model in the project (model names are unique on the server)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "ls" -d 'List registered models: those of the project, or every one you can read with --all'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "show" -d 'Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "versions" -d 'List a model\'s versions, newest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "version" -d 'Create or delete model versions'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "transition" -d 'Move a version to another stage (Production may need an approval first)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "approve" -d 'Approve a version for Production (project admins and owners), or --revoke the approval'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "alias" -d 'Point an alias at a version, or remove one with --remove ALIAS'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "history" -d 'Who did what to a model (or to one version), oldest first'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "update" -d 'Change a model\'s description, tags or approval setting'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "delete" -d 'Delete a model with all its versions, aliases and history (project admins)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "policy" -d 'Show the project\'s registry policy, or change it (project admins)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from model" -f -a "download" -d 'Download a model version\'s files, checking every digest (as `artifact get` does)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "gc" -d 'Delete stored file contents nothing refers to any more (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "user" -d 'Accounts: list, show, create, disable, enable, reset passwords, promote, demote (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "api-key" -d 'Every account\'s API keys: list and revoke (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "status" -d 'The server\'s version, uptime, CPU, memory, disk, database and blob store (server administrators only)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "backup" -d 'Write a consistent backup of the server\'s database and local blobs to one file, while the server keeps running (reads the storage directly; no login needed)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "restore" -d 'Restore a backup into a new data directory (or an empty database and bucket)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "verify" -d 'Check the database\'s integrity, every metric chunk\'s checksum and every blob\'s digest, or a backup file against its manifest; exits with 1 and lists the problems when anything is wrong'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "export" -d 'Export everything (tables as JSON lines, blobs as files) into a directory, to import into another backend'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "import" -d 'Import an export into an empty database and blob store, then compare counts and checksums with the export'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from admin" -f -a "compact" -d 'Rewrite metric chunks stored in an older format in the current one (with a checksum), working on the storage directly; safe while the server runs'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "logs" -d 'List audit events, newest first; filters combine'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "stats" -d 'Event counts of the last hours: by category, severity and outcome, logins and failure rate'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "failed-logins" -d 'Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from cache" -f -a "info" -d 'Show where the cache is, what it holds and its size limit'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and __fish_seen_subcommand_from cache" -f -a "prune" -d 'Remove the least recently used content until the cache is within its limit'
