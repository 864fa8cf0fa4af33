
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'wanllmdb' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'wanllmdb'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'wanllmdb' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Store an API key for a server (checked against it first)')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Forget the stored API key for a server')
            [CompletionResult]::new('whoami', 'whoami', [CompletionResultType]::ParameterValue, 'Show who the stored key belongs to, and where it came from')
            [CompletionResult]::new('auth', 'auth', [CompletionResultType]::ParameterValue, 'Manage your account: change your password, print the stored API key')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write ./.wanllmdb.toml (project, host) and create the project if missing')
            [CompletionResult]::new('project', 'project', [CompletionResultType]::ParameterValue, 'Create, list, show and delete projects; manage members')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Track a program: wanllmdb run [OPTIONS] -- CMD [ARGS]…')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'Log metrics (KEY=VALUE… or JSON lines on stdin) or a message to a run')
            [CompletionResult]::new('sync', 'sync', [CompletionResultType]::ParameterValue, 'Upload spooled runs (offline runs, or what an outage left behind)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Bring history in from other trackers: an MLflow server, TensorBoard event files')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Send history to other trackers: a project to an MLflow server')
            [CompletionResult]::new('runs', 'runs', [CompletionResultType]::ParameterValue, 'List, inspect, compare and change runs')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'Print or follow a run''s output')
            [CompletionResult]::new('open', 'open', [CompletionResultType]::ParameterValue, 'Print the web page of a run or project, and open it on a desktop')
            [CompletionResult]::new('files', 'files', [CompletionResultType]::ParameterValue, 'Attach files to a run, list them, download them')
            [CompletionResult]::new('artifact', 'artifact', [CompletionResultType]::ParameterValue, 'Version datasets, models and code: put, get, list, alias, reference, lineage')
            [CompletionResult]::new('sweep', 'sweep', [CompletionResultType]::ParameterValue, 'Hyperparameter sweeps (W&B-format configs): create, run agents, inspect, control')
            [CompletionResult]::new('model', 'model', [CompletionResultType]::ParameterValue, 'Model registry: register models, version them, stage, approve, alias, download')
            [CompletionResult]::new('admin', 'admin', [CompletionResultType]::ParameterValue, 'Server administration (administrators only)')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Read the audit log: events, failed logins, statistics (administrators only)')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run the tracking server (SQLite + local files by default, or PostgreSQL)')
            [CompletionResult]::new('cache', 'cache', [CompletionResultType]::ParameterValue, 'The local download cache: its size and limit; prune the least recently used content')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions (bash, zsh, fish, elvish, powershell)')
            [CompletionResult]::new('generate-docs', 'generate-docs', [CompletionResultType]::ParameterValue, 'Write completions/ and man/ into a directory (used to refresh the repository''s copies)')
            [CompletionResult]::new('guard-program', 'guard-program', [CompletionResultType]::ParameterValue, 'Run a program under a guard that stops it when the wrapper dies (the wrapper uses this)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;login' {
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Sign in with this account''s password and create an API key for this machine')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from stdin (for scripts)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;logout' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;whoami' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;auth' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('passwd', 'passwd', [CompletionResultType]::ParameterValue, 'Change your password; your other sessions end, API keys keep working')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;auth;passwd' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the current password, then the new one, from stdin, one per line (for scripts)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;auth;token' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;auth;help' {
            [CompletionResult]::new('passwd', 'passwd', [CompletionResultType]::ParameterValue, 'Change your password; your other sessions end, API keys keep working')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;auth;help;passwd' {
            break
        }
        'wanllmdb;auth;help;token' {
            break
        }
        'wanllmdb;auth;help;help' {
            break
        }
        'wanllmdb;init' {
            [CompletionResult]::new('--scalars', '--scalars', [CompletionResultType]::ParameterName, 'Also capture `key: value` numbers from output lines matching this regex in `wanllmdb run`')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;project' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a project')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the projects you can see')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a project and its statistics')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a project and all its runs')
            [CompletionResult]::new('members', 'members', [CompletionResultType]::ParameterValue, 'List, add and remove members, or change their role')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;project;create' {
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'What the project is about')
            [CompletionResult]::new('--visibility', '--visibility', [CompletionResultType]::ParameterName, 'Who can see it')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;project;list' {
            [CompletionResult]::new('--search', '--search', [CompletionResultType]::ParameterName, 'Only names containing this text')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;project;show' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;project;delete' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;project;members' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List members and their roles')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a user with a role')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a user')
            [CompletionResult]::new('role', 'role', [CompletionResultType]::ParameterValue, 'Change a user''s role')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;project;members;list' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;project;members;add' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role to give')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;project;members;remove' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;project;members;role' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;project;members;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List members and their roles')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a user with a role')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a user')
            [CompletionResult]::new('role', 'role', [CompletionResultType]::ParameterValue, 'Change a user''s role')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;project;members;help;list' {
            break
        }
        'wanllmdb;project;members;help;add' {
            break
        }
        'wanllmdb;project;members;help;remove' {
            break
        }
        'wanllmdb;project;members;help;role' {
            break
        }
        'wanllmdb;project;members;help;help' {
            break
        }
        'wanllmdb;project;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a project')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the projects you can see')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a project and its statistics')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a project and all its runs')
            [CompletionResult]::new('members', 'members', [CompletionResultType]::ParameterValue, 'List, add and remove members, or change their role')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;project;help;create' {
            break
        }
        'wanllmdb;project;help;list' {
            break
        }
        'wanllmdb;project;help;show' {
            break
        }
        'wanllmdb;project;help;delete' {
            break
        }
        'wanllmdb;project;help;members' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List members and their roles')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a user with a role')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a user')
            [CompletionResult]::new('role', 'role', [CompletionResultType]::ParameterValue, 'Change a user''s role')
            break
        }
        'wanllmdb;project;help;members;list' {
            break
        }
        'wanllmdb;project;help;members;add' {
            break
        }
        'wanllmdb;project;help;members;remove' {
            break
        }
        'wanllmdb;project;help;members;role' {
            break
        }
        'wanllmdb;project;help;help' {
            break
        }
        'wanllmdb;run' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Display name of the run [default: the run id]')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'Run id (8 characters of a-z and 0-9); an existing id in the project is resumed')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Tag the run (repeatable)')
            [CompletionResult]::new('--notes', '--notes', [CompletionResultType]::ParameterName, 'Notes about the run')
            [CompletionResult]::new('--group', '--group', [CompletionResultType]::ParameterName, 'Group runs that belong together (e.g. workers of one job)')
            [CompletionResult]::new('--job-type', '--job-type', [CompletionResultType]::ParameterName, 'Kind of job, e.g. train or eval')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Hyperparameters: a .yaml/.json file or KEY=VALUE (dotted keys nest); repeatable, later wins')
            [CompletionResult]::new('--scalars', '--scalars', [CompletionResultType]::ParameterName, 'Also record `key: value` / `key=value` numbers from output lines matching this regex')
            [CompletionResult]::new('--sync-timeout', '--sync-timeout', [CompletionResultType]::ParameterName, 'After the program ends, how long to keep trying an unreachable server before leaving the rest to `wanllmdb sync`')
            [CompletionResult]::new('--save', '--save', [CompletionResultType]::ParameterName, 'Attach files matching this glob to the run when it ends (repeatable; directories recursively)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--offline', '--offline', [CompletionResultType]::ParameterName, 'Do not contact the server; upload later with `wanllmdb sync`')
            [CompletionResult]::new('--no-system-metrics', '--no-system-metrics', [CompletionResultType]::ParameterName, 'Record no system/… metrics (CPU, memory, GPUs every 15 s)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;log' {
            [CompletionResult]::new('--run', '--run', [CompletionResultType]::ParameterName, 'Run id [default: the wrapped run, $WANLLMDB_RUN_ID]')
            [CompletionResult]::new('--step', '--step', [CompletionResultType]::ParameterName, 'Step of these values')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Log this text as a log line instead of metrics')
            [CompletionResult]::new('--message', '--message', [CompletionResultType]::ParameterName, 'Log this text as a log line instead of metrics')
            [CompletionResult]::new('--level', '--level', [CompletionResultType]::ParameterName, 'Level of --message: debug, info, warning or error')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sync' {
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'Runs uploaded at the same time')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'Runs uploaded at the same time')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Only list what would be uploaded')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;import' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('tensorboard', 'tensorboard', [CompletionResultType]::ParameterValue, 'TensorBoard event files: each directory of them a run, each scalar tag a metric')
            [CompletionResult]::new('mlflow', 'mlflow', [CompletionResultType]::ParameterValue, 'A running MLflow server: experiments, runs, metrics, artifacts, registered models')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;import;tensorboard' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project to import into (created if missing) [default: from .wanllmdb.toml]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project to import into (created if missing) [default: from .wanllmdb.toml]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Only read the files and print what would be imported')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;import;mlflow' {
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'The MLflow server''s URL (its MLFLOW_TRACKING_URI)')
            [CompletionResult]::new('--experiments', '--experiments', [CompletionResultType]::ParameterName, 'Only these experiments (by name) [default: every active experiment]')
            [CompletionResult]::new('--source-token', '--source-token', [CompletionResultType]::ParameterName, 'A token for the MLflow server [default: MLFLOW_TRACKING_TOKEN]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--no-models', '--no-models', [CompletionResultType]::ParameterName, 'Leave out registered models')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;import;help' {
            [CompletionResult]::new('tensorboard', 'tensorboard', [CompletionResultType]::ParameterValue, 'TensorBoard event files: each directory of them a run, each scalar tag a metric')
            [CompletionResult]::new('mlflow', 'mlflow', [CompletionResultType]::ParameterValue, 'A running MLflow server: experiments, runs, metrics, artifacts, registered models')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;import;help;tensorboard' {
            break
        }
        'wanllmdb;import;help;mlflow' {
            break
        }
        'wanllmdb;import;help;help' {
            break
        }
        'wanllmdb;export' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('mlflow', 'mlflow', [CompletionResultType]::ParameterValue, 'To an MLflow server: a project''s runs, metrics, files and registered models')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;export;mlflow' {
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'The MLflow server''s URL (its MLFLOW_TRACKING_URI)')
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'The project to export [default: from .wanllmdb.toml]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'The project to export [default: from .wanllmdb.toml]')
            [CompletionResult]::new('--token', '--token', [CompletionResultType]::ParameterName, 'A token for the MLflow server [default: MLFLOW_TRACKING_TOKEN]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--no-models', '--no-models', [CompletionResultType]::ParameterName, 'Leave out registered models')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;export;help' {
            [CompletionResult]::new('mlflow', 'mlflow', [CompletionResultType]::ParameterValue, 'To an MLflow server: a project''s runs, metrics, files and registered models')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;export;help;mlflow' {
            break
        }
        'wanllmdb;export;help;help' {
            break
        }
        'wanllmdb;runs' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List runs of a project, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one run: state, config, git, host and metric summary')
            [CompletionResult]::new('compare', 'compare', [CompletionResultType]::ParameterValue, 'Compare runs side by side: config differences and summary metrics')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Print a run''s metric history')
            [CompletionResult]::new('plot', 'plot', [CompletionResultType]::ParameterValue, 'Draw runs'' metrics in the terminal (Braille characters at the terminal''s width)')
            [CompletionResult]::new('tag', 'tag', [CompletionResultType]::ParameterValue, 'Add or remove tags')
            [CompletionResult]::new('notes', 'notes', [CompletionResultType]::ParameterValue, 'Replace a run''s notes')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Ask a running run to stop (its wrapper stops the program at the next heartbeat)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a run with its metrics and logs')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;runs;list' {
            [CompletionResult]::new('--state', '--state', [CompletionResultType]::ParameterName, 'Only runs in this state: running, finished, crashed, killed')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Only runs with this tag (repeatable: all must match)')
            [CompletionResult]::new('--search', '--search', [CompletionResultType]::ParameterName, 'Only runs whose name or id contains this text')
            [CompletionResult]::new('--filter', '--filter', [CompletionResultType]::ParameterName, 'Filter expression, e.g. ''summary.acc >= 0.9'' (repeatable)')
            [CompletionResult]::new('--sort', '--sort', [CompletionResultType]::ParameterName, 'Sort key, `-` for descending: created_at, name, state, config.X, summary.X')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many runs')
            [CompletionResult]::new('--columns', '--columns', [CompletionResultType]::ParameterName, 'Columns: id, name, state, user, created, finished, tags, group, job_type, host, exit_code, notes, project, config.X, summary.X')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;runs;show' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;runs;compare' {
            [CompletionResult]::new('--keys', '--keys', [CompletionResultType]::ParameterName, 'Only these summary metrics')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Also show config values that are equal in every run')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;runs;history' {
            [CompletionResult]::new('--keys', '--keys', [CompletionResultType]::ParameterName, 'Only these metrics (comma-separated) [default: all]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'csv (one row per step, one column per metric) or json (the API''s columnar answer)')
            [CompletionResult]::new('--max-points', '--max-points', [CompletionResultType]::ParameterName, 'Downsample each metric to at most this many buckets (each bucket''s last value; json adds min and max)')
            [CompletionResult]::new('--min-step', '--min-step', [CompletionResultType]::ParameterName, 'From this step')
            [CompletionResult]::new('--max-step', '--max-step', [CompletionResultType]::ParameterName, 'Up to this step')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;runs;plot' {
            [CompletionResult]::new('--keys', '--keys', [CompletionResultType]::ParameterName, 'Metrics to plot (comma-separated), one chart each')
            [CompletionResult]::new('--width', '--width', [CompletionResultType]::ParameterName, 'Width in characters [default: the terminal''s]')
            [CompletionResult]::new('--height', '--height', [CompletionResultType]::ParameterName, 'Height of each chart in lines')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;runs;tag' {
            [CompletionResult]::new('--add', '--add', [CompletionResultType]::ParameterName, 'Tag to add (repeatable)')
            [CompletionResult]::new('--remove', '--remove', [CompletionResultType]::ParameterName, 'Tag to remove (repeatable)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;runs;notes' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;runs;stop' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;runs;delete' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;runs;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List runs of a project, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one run: state, config, git, host and metric summary')
            [CompletionResult]::new('compare', 'compare', [CompletionResultType]::ParameterValue, 'Compare runs side by side: config differences and summary metrics')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Print a run''s metric history')
            [CompletionResult]::new('plot', 'plot', [CompletionResultType]::ParameterValue, 'Draw runs'' metrics in the terminal (Braille characters at the terminal''s width)')
            [CompletionResult]::new('tag', 'tag', [CompletionResultType]::ParameterValue, 'Add or remove tags')
            [CompletionResult]::new('notes', 'notes', [CompletionResultType]::ParameterValue, 'Replace a run''s notes')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Ask a running run to stop (its wrapper stops the program at the next heartbeat)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a run with its metrics and logs')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;runs;help;list' {
            break
        }
        'wanllmdb;runs;help;show' {
            break
        }
        'wanllmdb;runs;help;compare' {
            break
        }
        'wanllmdb;runs;help;history' {
            break
        }
        'wanllmdb;runs;help;plot' {
            break
        }
        'wanllmdb;runs;help;tag' {
            break
        }
        'wanllmdb;runs;help;notes' {
            break
        }
        'wanllmdb;runs;help;stop' {
            break
        }
        'wanllmdb;runs;help;delete' {
            break
        }
        'wanllmdb;runs;help;help' {
            break
        }
        'wanllmdb;logs' {
            [CompletionResult]::new('--level', '--level', [CompletionResultType]::ParameterName, 'Minimum level: debug, info, warning, error')
            [CompletionResult]::new('--source', '--source', [CompletionResultType]::ParameterName, 'Only lines from stdout, stderr, sdk or user')
            [CompletionResult]::new('--grep', '--grep', [CompletionResultType]::ParameterName, 'Only lines containing this text (case-insensitive)')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'txt (time, level, source, message), json or csv')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Keep printing new lines until the run ends')
            [CompletionResult]::new('--follow', '--follow', [CompletionResultType]::ParameterName, 'Keep printing new lines until the run ends')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;open' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--print', '--print', [CompletionResultType]::ParameterName, 'Only print the URL, even on a desktop')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;files' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Attach files or directories to a run (only bytes the server lacks are sent)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Download a run''s files (all, or the paths given), checking every SHA-256')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List a run''s files')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Detach files from a run')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;files;put' {
            [CompletionResult]::new('--prefix', '--prefix', [CompletionResultType]::ParameterName, 'Store under this directory on the server')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;files;get' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'Directory to write into')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;files;list' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;files;delete' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;files;help' {
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Attach files or directories to a run (only bytes the server lacks are sent)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Download a run''s files (all, or the paths given), checking every SHA-256')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List a run''s files')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Detach files from a run')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;files;help;put' {
            break
        }
        'wanllmdb;files;help;get' {
            break
        }
        'wanllmdb;files;help;list' {
            break
        }
        'wanllmdb;files;help;delete' {
            break
        }
        'wanllmdb;files;help;help' {
            break
        }
        'wanllmdb;artifact' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Log files, directories and references as a new version of an artifact')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Download a version, checking every digest (content already cached is copied locally)')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List a project''s artifacts')
            [CompletionResult]::new('versions', 'versions', [CompletionResultType]::ParameterValue, 'List the versions of an artifact, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a version: details, aliases, files and lineage')
            [CompletionResult]::new('lineage', 'lineage', [CompletionResultType]::ParameterValue, 'Where a version came from (the runs and inputs upstream) and what was made with it, as trees')
            [CompletionResult]::new('alias', 'alias', [CompletionResultType]::ParameterValue, 'Point an alias at a version, or remove it with --remove')
            [CompletionResult]::new('aliases', 'aliases', [CompletionResultType]::ParameterValue, 'List an artifact''s aliases (latest included) and the versions they point at')
            [CompletionResult]::new('cache', 'cache', [CompletionResultType]::ParameterValue, 'Show where the local content cache is and how much it holds; --clear empties it (`wanllmdb cache` shows its size limit and prunes it)')
            [CompletionResult]::new('ref', 'ref', [CompletionResultType]::ParameterValue, 'Log a version made of references to s3://, gs:// or https:// objects')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change an artifact''s description, tags or metadata (a version''s files never change)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete an artifact with all its versions and aliases')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;artifact;put' {
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Artifact name (NAME, or PROJECT/NAME)')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Type: model, dataset, file, code or any other word (needed for a new artifact)')
            [CompletionResult]::new('--alias', '--alias', [CompletionResultType]::ParameterName, 'Point this alias at the new version (repeatable)')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'Description of the version')
            [CompletionResult]::new('--metadata', '--metadata', [CompletionResultType]::ParameterName, 'KEY=VALUE metadata of the version (values parsed as JSON when they can be; repeatable)')
            [CompletionResult]::new('--run', '--run', [CompletionResultType]::ParameterName, 'Run that produced it [default: $WANLLMDB_RUN_ID inside `wanllmdb run`]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;get' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'Directory to write into [default: ./artifacts/NAME/vN]')
            [CompletionResult]::new('--run', '--run', [CompletionResultType]::ParameterName, 'Record this run as a user of the version [default: $WANLLMDB_RUN_ID]')
            [CompletionResult]::new('--cache-max-size', '--cache-max-size', [CompletionResultType]::ParameterName, 'Most the local cache keeps; after the download the least recently used content goes: 20GiB, 500MB, 10% (of its disk), 0 or unlimited [default: `cache_max_size` in the user config, else 10% of the disk, at most 50 GiB]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--no-cache', '--no-cache', [CompletionResultType]::ParameterName, 'Download without keeping a copy in the local cache')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;ls' {
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Only this type')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;versions' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;show' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;lineage' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;alias' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--remove', '--remove', [CompletionResultType]::ParameterName, 'Remove the alias instead')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;aliases' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;cache' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--clear', '--clear', [CompletionResultType]::ParameterName, 'Delete everything in the cache')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;ref' {
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Type (needed for a new artifact)')
            [CompletionResult]::new('--alias', '--alias', [CompletionResultType]::ParameterName, 'Point this alias at the new version (repeatable)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;update' {
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'New description')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Replace the tags with these (repeatable)')
            [CompletionResult]::new('--metadata', '--metadata', [CompletionResultType]::ParameterName, 'Set these KEY=VALUE pairs in the metadata, keeping the other keys; KEY=null removes one (repeatable)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--clear-tags', '--clear-tags', [CompletionResultType]::ParameterName, 'Remove all tags')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;delete' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;artifact;help' {
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Log files, directories and references as a new version of an artifact')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Download a version, checking every digest (content already cached is copied locally)')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List a project''s artifacts')
            [CompletionResult]::new('versions', 'versions', [CompletionResultType]::ParameterValue, 'List the versions of an artifact, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a version: details, aliases, files and lineage')
            [CompletionResult]::new('lineage', 'lineage', [CompletionResultType]::ParameterValue, 'Where a version came from (the runs and inputs upstream) and what was made with it, as trees')
            [CompletionResult]::new('alias', 'alias', [CompletionResultType]::ParameterValue, 'Point an alias at a version, or remove it with --remove')
            [CompletionResult]::new('aliases', 'aliases', [CompletionResultType]::ParameterValue, 'List an artifact''s aliases (latest included) and the versions they point at')
            [CompletionResult]::new('cache', 'cache', [CompletionResultType]::ParameterValue, 'Show where the local content cache is and how much it holds; --clear empties it (`wanllmdb cache` shows its size limit and prunes it)')
            [CompletionResult]::new('ref', 'ref', [CompletionResultType]::ParameterValue, 'Log a version made of references to s3://, gs:// or https:// objects')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change an artifact''s description, tags or metadata (a version''s files never change)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete an artifact with all its versions and aliases')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;artifact;help;put' {
            break
        }
        'wanllmdb;artifact;help;get' {
            break
        }
        'wanllmdb;artifact;help;ls' {
            break
        }
        'wanllmdb;artifact;help;versions' {
            break
        }
        'wanllmdb;artifact;help;show' {
            break
        }
        'wanllmdb;artifact;help;lineage' {
            break
        }
        'wanllmdb;artifact;help;alias' {
            break
        }
        'wanllmdb;artifact;help;aliases' {
            break
        }
        'wanllmdb;artifact;help;cache' {
            break
        }
        'wanllmdb;artifact;help;ref' {
            break
        }
        'wanllmdb;artifact;help;update' {
            break
        }
        'wanllmdb;artifact;help;delete' {
            break
        }
        'wanllmdb;artifact;help;help' {
            break
        }
        'wanllmdb;sweep' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a sweep from a YAML or JSON config (W&B''s sweep format)')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a config without creating anything; lists every problem with its path')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the sweeps of the project')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a sweep: state, counts, best run, top runs, parameter importance')
            [CompletionResult]::new('trials', 'trials', [CompletionResultType]::ParameterValue, 'List every trial of a sweep with its parameters and value')
            [CompletionResult]::new('suggest', 'suggest', [CompletionResultType]::ParameterValue, 'Manual mode: reserve the next parameters and a run id to start yourself')
            [CompletionResult]::new('pause', 'pause', [CompletionResultType]::ParameterValue, 'Stop handing out new runs; running ones go on')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'Hand out runs again after a pause')
            [CompletionResult]::new('finish', 'finish', [CompletionResultType]::ParameterValue, 'End the sweep: no new runs; running ones finish')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'End the sweep and stop its running runs')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)')
            [CompletionResult]::new('retry-failed', 'retry-failed', [CompletionResultType]::ParameterValue, 'Queue every crashed run to be tried again with the same parameters')
            [CompletionResult]::new('agent', 'agent', [CompletionResultType]::ParameterValue, 'Run trials of a sweep here until it is done (or --count runs)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;sweep;create' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;validate' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;list' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;show' {
            [CompletionResult]::new('--top', '--top', [CompletionResultType]::ParameterName, 'Rows of the top-runs table')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;trials' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;suggest' {
            [CompletionResult]::new('--write', '--write', [CompletionResultType]::ParameterName, 'Also write the (nested) parameters to this JSON file')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;pause' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;resume' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;finish' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;cancel' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;delete' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;retry-failed' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;agent' {
            [CompletionResult]::new('--count', '--count', [CompletionResultType]::ParameterName, 'Run at most this many trials, then exit')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Seconds between SIGTERM and SIGKILL when a run is stopped')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--no-system-metrics', '--no-system-metrics', [CompletionResultType]::ParameterName, 'Record no system/… metrics for the runs (CPU, memory, GPUs every 15 s)')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;sweep;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a sweep from a YAML or JSON config (W&B''s sweep format)')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a config without creating anything; lists every problem with its path')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the sweeps of the project')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a sweep: state, counts, best run, top runs, parameter importance')
            [CompletionResult]::new('trials', 'trials', [CompletionResultType]::ParameterValue, 'List every trial of a sweep with its parameters and value')
            [CompletionResult]::new('suggest', 'suggest', [CompletionResultType]::ParameterValue, 'Manual mode: reserve the next parameters and a run id to start yourself')
            [CompletionResult]::new('pause', 'pause', [CompletionResultType]::ParameterValue, 'Stop handing out new runs; running ones go on')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'Hand out runs again after a pause')
            [CompletionResult]::new('finish', 'finish', [CompletionResultType]::ParameterValue, 'End the sweep: no new runs; running ones finish')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'End the sweep and stop its running runs')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)')
            [CompletionResult]::new('retry-failed', 'retry-failed', [CompletionResultType]::ParameterValue, 'Queue every crashed run to be tried again with the same parameters')
            [CompletionResult]::new('agent', 'agent', [CompletionResultType]::ParameterValue, 'Run trials of a sweep here until it is done (or --count runs)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;sweep;help;create' {
            break
        }
        'wanllmdb;sweep;help;validate' {
            break
        }
        'wanllmdb;sweep;help;list' {
            break
        }
        'wanllmdb;sweep;help;show' {
            break
        }
        'wanllmdb;sweep;help;trials' {
            break
        }
        'wanllmdb;sweep;help;suggest' {
            break
        }
        'wanllmdb;sweep;help;pause' {
            break
        }
        'wanllmdb;sweep;help;resume' {
            break
        }
        'wanllmdb;sweep;help;finish' {
            break
        }
        'wanllmdb;sweep;help;cancel' {
            break
        }
        'wanllmdb;sweep;help;delete' {
            break
        }
        'wanllmdb;sweep;help;retry-failed' {
            break
        }
        'wanllmdb;sweep;help;agent' {
            break
        }
        'wanllmdb;sweep;help;help' {
            break
        }
        'wanllmdb;model' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('register', 'register', [CompletionResultType]::ParameterValue, 'Register a model in the project (model names are unique on the server)')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List registered models: those of the project, or every one you can read with --all')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)')
            [CompletionResult]::new('versions', 'versions', [CompletionResultType]::ParameterValue, 'List a model''s versions, newest first')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Create or delete model versions')
            [CompletionResult]::new('transition', 'transition', [CompletionResultType]::ParameterValue, 'Move a version to another stage (Production may need an approval first)')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a version for Production (project admins and owners), or --revoke the approval')
            [CompletionResult]::new('alias', 'alias', [CompletionResultType]::ParameterValue, 'Point an alias at a version, or remove one with --remove ALIAS')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Who did what to a model (or to one version), oldest first')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a model''s description, tags or approval setting')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a model with all its versions, aliases and history (project admins)')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Show the project''s registry policy, or change it (project admins)')
            [CompletionResult]::new('download', 'download', [CompletionResultType]::ParameterValue, 'Download a model version''s files, checking every digest (as `artifact get` does)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;model;register' {
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'Free text')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Tag (repeatable)')
            [CompletionResult]::new('--require-approval', '--require-approval', [CompletionResultType]::ParameterName, 'Whether Production needs an approval [default: the project''s policy]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;ls' {
            [CompletionResult]::new('--search', '--search', [CompletionResultType]::ParameterName, 'Only models whose name or description contains this')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Models of every project you can read, not just the current one')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;show' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;versions' {
            [CompletionResult]::new('--stage', '--stage', [CompletionResultType]::ParameterName, 'Only versions in this stage')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;version' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Register an artifact version as the next version of a model')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a version (project admins); its artifact version stays')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;model;version;create' {
            [CompletionResult]::new('--artifact', '--artifact', [CompletionResultType]::ParameterName, 'ART:VER, ART:ALIAS or PROJECT/ART:VER')
            [CompletionResult]::new('--run', '--run', [CompletionResultType]::ParameterName, 'The run that trained it [default: $WANLLMDB_RUN_ID inside `wanllmdb run`]')
            [CompletionResult]::new('--metrics', '--metrics', [CompletionResultType]::ParameterName, 'Evaluation metric KEY=VALUE (repeatable)')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'Free text')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Tag (repeatable)')
            [CompletionResult]::new('--stage', '--stage', [CompletionResultType]::ParameterName, 'Move it to this stage at once, under the rules of `model transition` (Production without a needed approval leaves it in None, with a warning)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;version;delete' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;version;help' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Register an artifact version as the next version of a model')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a version (project admins); its artifact version stays')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;model;version;help;create' {
            break
        }
        'wanllmdb;model;version;help;delete' {
            break
        }
        'wanllmdb;model;version;help;help' {
            break
        }
        'wanllmdb;model;transition' {
            [CompletionResult]::new('--to', '--to', [CompletionResultType]::ParameterName, 'Stage to move to: Staging, Production, Archived or None')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Why (kept in the history)')
            [CompletionResult]::new('--comment', '--comment', [CompletionResultType]::ParameterName, 'Why (kept in the history)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--archive-existing', '--archive-existing', [CompletionResultType]::ParameterName, 'Into Production or Staging: archive the versions already in that stage')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;approve' {
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Why (kept in the history)')
            [CompletionResult]::new('--comment', '--comment', [CompletionResultType]::ParameterName, 'Why (kept in the history)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--revoke', '--revoke', [CompletionResultType]::ParameterName, 'Withdraw the approval instead')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;alias' {
            [CompletionResult]::new('--remove', '--remove', [CompletionResultType]::ParameterName, 'Remove this alias instead')
            [CompletionResult]::new('-m', '-m', [CompletionResultType]::ParameterName, 'Why (kept in the history)')
            [CompletionResult]::new('--comment', '--comment', [CompletionResultType]::ParameterName, 'Why (kept in the history)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;history' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;update' {
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'New description')
            [CompletionResult]::new('--tag', '--tag', [CompletionResultType]::ParameterName, 'Replace the tags with these (repeatable)')
            [CompletionResult]::new('--require-approval', '--require-approval', [CompletionResultType]::ParameterName, 'Whether Production needs an approval for this model')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--clear-tags', '--clear-tags', [CompletionResultType]::ParameterName, 'Remove all tags')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;delete' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do not ask for confirmation')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;policy' {
            [CompletionResult]::new('--require-approval', '--require-approval', [CompletionResultType]::ParameterName, 'Production needs an approval')
            [CompletionResult]::new('--allow-self-approval', '--allow-self-approval', [CompletionResultType]::ParameterName, 'The creator of a version may approve it')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;download' {
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'Directory to write into [default: ./models/NAME/vN]')
            [CompletionResult]::new('--run', '--run', [CompletionResultType]::ParameterName, 'Record this run as a user of the files [default: $WANLLMDB_RUN_ID]')
            [CompletionResult]::new('--cache-max-size', '--cache-max-size', [CompletionResultType]::ParameterName, 'Most the local cache keeps; after the download the least recently used content goes: 20GiB, 500MB, 10% (of its disk), 0 or unlimited [default: `cache_max_size` in the user config, else 10% of the disk, at most 50 GiB]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--no-cache', '--no-cache', [CompletionResultType]::ParameterName, 'Download without keeping a copy in the local cache')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;model;help' {
            [CompletionResult]::new('register', 'register', [CompletionResultType]::ParameterValue, 'Register a model in the project (model names are unique on the server)')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List registered models: those of the project, or every one you can read with --all')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)')
            [CompletionResult]::new('versions', 'versions', [CompletionResultType]::ParameterValue, 'List a model''s versions, newest first')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Create or delete model versions')
            [CompletionResult]::new('transition', 'transition', [CompletionResultType]::ParameterValue, 'Move a version to another stage (Production may need an approval first)')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a version for Production (project admins and owners), or --revoke the approval')
            [CompletionResult]::new('alias', 'alias', [CompletionResultType]::ParameterValue, 'Point an alias at a version, or remove one with --remove ALIAS')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Who did what to a model (or to one version), oldest first')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a model''s description, tags or approval setting')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a model with all its versions, aliases and history (project admins)')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Show the project''s registry policy, or change it (project admins)')
            [CompletionResult]::new('download', 'download', [CompletionResultType]::ParameterValue, 'Download a model version''s files, checking every digest (as `artifact get` does)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;model;help;register' {
            break
        }
        'wanllmdb;model;help;ls' {
            break
        }
        'wanllmdb;model;help;show' {
            break
        }
        'wanllmdb;model;help;versions' {
            break
        }
        'wanllmdb;model;help;version' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Register an artifact version as the next version of a model')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a version (project admins); its artifact version stays')
            break
        }
        'wanllmdb;model;help;version;create' {
            break
        }
        'wanllmdb;model;help;version;delete' {
            break
        }
        'wanllmdb;model;help;transition' {
            break
        }
        'wanllmdb;model;help;approve' {
            break
        }
        'wanllmdb;model;help;alias' {
            break
        }
        'wanllmdb;model;help;history' {
            break
        }
        'wanllmdb;model;help;update' {
            break
        }
        'wanllmdb;model;help;delete' {
            break
        }
        'wanllmdb;model;help;policy' {
            break
        }
        'wanllmdb;model;help;download' {
            break
        }
        'wanllmdb;model;help;help' {
            break
        }
        'wanllmdb;admin' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Delete stored file contents nothing refers to any more (server administrators only)')
            [CompletionResult]::new('user', 'user', [CompletionResultType]::ParameterValue, 'Accounts: list, show, create, disable, enable, reset passwords, promote, demote (server administrators only)')
            [CompletionResult]::new('api-key', 'api-key', [CompletionResultType]::ParameterValue, 'Every account''s API keys: list and revoke (server administrators only)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'The server''s version, uptime, CPU, memory, disk, database and blob store (server administrators only)')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Write a consistent backup of the server''s database and local blobs to one file, while the server keeps running (reads the storage directly; no login needed)')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore a backup into a new data directory (or an empty database and bucket)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check the database''s integrity, every metric chunk''s checksum and every blob''s digest, or a backup file against its manifest; exits with 1 and lists the problems when anything is wrong')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Export everything (tables as JSON lines, blobs as files) into a directory, to import into another backend')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import an export into an empty database and blob store, then compare counts and checksums with the export')
            [CompletionResult]::new('compact', 'compact', [CompletionResultType]::ParameterValue, 'Rewrite metric chunks stored in an older format in the current one (with a checksum), working on the storage directly; safe while the server runs')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;admin;gc' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Only report what would be deleted')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;user' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List accounts, oldest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one account')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create an account; without --password-stdin a strong password is generated and printed once on stdout')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Disable an account: it cannot log in, and its API keys and sessions are revoked at once')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Let a disabled account log in again (its revoked API keys stay revoked)')
            [CompletionResult]::new('reset-password', 'reset-password', [CompletionResultType]::ParameterValue, 'Set a new password and end the account''s sessions (its API keys are kept)')
            [CompletionResult]::new('promote', 'promote', [CompletionResultType]::ParameterValue, 'Make an account a server administrator')
            [CompletionResult]::new('demote', 'demote', [CompletionResultType]::ParameterValue, 'Make a server administrator an ordinary account')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;admin;user;list' {
            [CompletionResult]::new('--search', '--search', [CompletionResultType]::ParameterName, 'Only accounts whose username or email contains this text (any case)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;user;show' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;user;create' {
            [CompletionResult]::new('--email', '--email', [CompletionResultType]::ParameterName, 'Email address (unique on the server)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--admin', '--admin', [CompletionResultType]::ParameterName, 'Make the account a server administrator')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from the first line of stdin instead of generating one')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;user;disable' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;user;enable' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;user;reset-password' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the new password from the first line of stdin instead of generating one')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;user;promote' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;user;demote' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;user;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List accounts, oldest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one account')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create an account; without --password-stdin a strong password is generated and printed once on stdout')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Disable an account: it cannot log in, and its API keys and sessions are revoked at once')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Let a disabled account log in again (its revoked API keys stay revoked)')
            [CompletionResult]::new('reset-password', 'reset-password', [CompletionResultType]::ParameterValue, 'Set a new password and end the account''s sessions (its API keys are kept)')
            [CompletionResult]::new('promote', 'promote', [CompletionResultType]::ParameterValue, 'Make an account a server administrator')
            [CompletionResult]::new('demote', 'demote', [CompletionResultType]::ParameterValue, 'Make a server administrator an ordinary account')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;admin;user;help;list' {
            break
        }
        'wanllmdb;admin;user;help;show' {
            break
        }
        'wanllmdb;admin;user;help;create' {
            break
        }
        'wanllmdb;admin;user;help;disable' {
            break
        }
        'wanllmdb;admin;user;help;enable' {
            break
        }
        'wanllmdb;admin;user;help;reset-password' {
            break
        }
        'wanllmdb;admin;user;help;promote' {
            break
        }
        'wanllmdb;admin;user;help;demote' {
            break
        }
        'wanllmdb;admin;user;help;help' {
            break
        }
        'wanllmdb;admin;api-key' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List active API keys of every account, or of one (never the secrets)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an API key of any account, by id')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;admin;api-key;list' {
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Only this account''s keys')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;api-key;revoke' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;api-key;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List active API keys of every account, or of one (never the secrets)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an API key of any account, by id')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;admin;api-key;help;list' {
            break
        }
        'wanllmdb;admin;api-key;help;revoke' {
            break
        }
        'wanllmdb;admin;api-key;help;help' {
            break
        }
        'wanllmdb;admin;status' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;backup' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'The archive to write (must not exist yet)')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'The archive to write (must not exist yet)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory for the SQLite database, files and the admin key [default: the platform data directory]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]')
            [CompletionResult]::new('--storage-url', '--storage-url', [CompletionResultType]::ParameterName, 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--s3-region', '--s3-region', [CompletionResultType]::ParameterName, 'S3 region [default: AWS_REGION, else us-east-1]')
            [CompletionResult]::new('--s3-path-style', '--s3-path-style', [CompletionResultType]::ParameterName, 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;restore' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory for the SQLite database, files and the admin key [default: the platform data directory]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]')
            [CompletionResult]::new('--storage-url', '--storage-url', [CompletionResultType]::ParameterName, 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--s3-region', '--s3-region', [CompletionResultType]::ParameterName, 'S3 region [default: AWS_REGION, else us-east-1]')
            [CompletionResult]::new('--s3-path-style', '--s3-path-style', [CompletionResultType]::ParameterName, 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;verify' {
            [CompletionResult]::new('--backup', '--backup', [CompletionResultType]::ParameterName, 'Check this backup archive against its manifest instead of the server''s storage')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory for the SQLite database, files and the admin key [default: the platform data directory]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]')
            [CompletionResult]::new('--storage-url', '--storage-url', [CompletionResultType]::ParameterName, 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--s3-region', '--s3-region', [CompletionResultType]::ParameterName, 'S3 region [default: AWS_REGION, else us-east-1]')
            [CompletionResult]::new('--s3-path-style', '--s3-path-style', [CompletionResultType]::ParameterName, 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;export' {
            [CompletionResult]::new('-o', '-o', [CompletionResultType]::ParameterName, 'The directory to write (must be empty or absent)')
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'The directory to write (must be empty or absent)')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory for the SQLite database, files and the admin key [default: the platform data directory]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]')
            [CompletionResult]::new('--storage-url', '--storage-url', [CompletionResultType]::ParameterName, 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--s3-region', '--s3-region', [CompletionResultType]::ParameterName, 'S3 region [default: AWS_REGION, else us-east-1]')
            [CompletionResult]::new('--s3-path-style', '--s3-path-style', [CompletionResultType]::ParameterName, 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;import' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory for the SQLite database, files and the admin key [default: the platform data directory]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]')
            [CompletionResult]::new('--storage-url', '--storage-url', [CompletionResultType]::ParameterName, 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--s3-region', '--s3-region', [CompletionResultType]::ParameterName, 'S3 region [default: AWS_REGION, else us-east-1]')
            [CompletionResult]::new('--s3-path-style', '--s3-path-style', [CompletionResultType]::ParameterName, 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;compact' {
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory for the SQLite database, files and the admin key [default: the platform data directory]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]')
            [CompletionResult]::new('--storage-url', '--storage-url', [CompletionResultType]::ParameterName, 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--s3-region', '--s3-region', [CompletionResultType]::ParameterName, 'S3 region [default: AWS_REGION, else us-east-1]')
            [CompletionResult]::new('--s3-path-style', '--s3-path-style', [CompletionResultType]::ParameterName, 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;admin;help' {
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Delete stored file contents nothing refers to any more (server administrators only)')
            [CompletionResult]::new('user', 'user', [CompletionResultType]::ParameterValue, 'Accounts: list, show, create, disable, enable, reset passwords, promote, demote (server administrators only)')
            [CompletionResult]::new('api-key', 'api-key', [CompletionResultType]::ParameterValue, 'Every account''s API keys: list and revoke (server administrators only)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'The server''s version, uptime, CPU, memory, disk, database and blob store (server administrators only)')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Write a consistent backup of the server''s database and local blobs to one file, while the server keeps running (reads the storage directly; no login needed)')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore a backup into a new data directory (or an empty database and bucket)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check the database''s integrity, every metric chunk''s checksum and every blob''s digest, or a backup file against its manifest; exits with 1 and lists the problems when anything is wrong')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Export everything (tables as JSON lines, blobs as files) into a directory, to import into another backend')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import an export into an empty database and blob store, then compare counts and checksums with the export')
            [CompletionResult]::new('compact', 'compact', [CompletionResultType]::ParameterValue, 'Rewrite metric chunks stored in an older format in the current one (with a checksum), working on the storage directly; safe while the server runs')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;admin;help;gc' {
            break
        }
        'wanllmdb;admin;help;user' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List accounts, oldest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one account')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create an account; without --password-stdin a strong password is generated and printed once on stdout')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Disable an account: it cannot log in, and its API keys and sessions are revoked at once')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Let a disabled account log in again (its revoked API keys stay revoked)')
            [CompletionResult]::new('reset-password', 'reset-password', [CompletionResultType]::ParameterValue, 'Set a new password and end the account''s sessions (its API keys are kept)')
            [CompletionResult]::new('promote', 'promote', [CompletionResultType]::ParameterValue, 'Make an account a server administrator')
            [CompletionResult]::new('demote', 'demote', [CompletionResultType]::ParameterValue, 'Make a server administrator an ordinary account')
            break
        }
        'wanllmdb;admin;help;user;list' {
            break
        }
        'wanllmdb;admin;help;user;show' {
            break
        }
        'wanllmdb;admin;help;user;create' {
            break
        }
        'wanllmdb;admin;help;user;disable' {
            break
        }
        'wanllmdb;admin;help;user;enable' {
            break
        }
        'wanllmdb;admin;help;user;reset-password' {
            break
        }
        'wanllmdb;admin;help;user;promote' {
            break
        }
        'wanllmdb;admin;help;user;demote' {
            break
        }
        'wanllmdb;admin;help;api-key' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List active API keys of every account, or of one (never the secrets)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an API key of any account, by id')
            break
        }
        'wanllmdb;admin;help;api-key;list' {
            break
        }
        'wanllmdb;admin;help;api-key;revoke' {
            break
        }
        'wanllmdb;admin;help;status' {
            break
        }
        'wanllmdb;admin;help;backup' {
            break
        }
        'wanllmdb;admin;help;restore' {
            break
        }
        'wanllmdb;admin;help;verify' {
            break
        }
        'wanllmdb;admin;help;export' {
            break
        }
        'wanllmdb;admin;help;import' {
            break
        }
        'wanllmdb;admin;help;compact' {
            break
        }
        'wanllmdb;admin;help;help' {
            break
        }
        'wanllmdb;audit' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'List audit events, newest first; filters combine')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Event counts of the last hours: by category, severity and outcome, logins and failure rate')
            [CompletionResult]::new('failed-logins', 'failed-logins', [CompletionResultType]::ParameterValue, 'Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;audit;logs' {
            [CompletionResult]::new('--event-category', '--event-category', [CompletionResultType]::ParameterName, 'Only these categories: authentication, authorization, data_modification, data_access, security')
            [CompletionResult]::new('--category', '--category', [CompletionResultType]::ParameterName, 'Only these categories: authentication, authorization, data_modification, data_access, security')
            [CompletionResult]::new('--event-type', '--event-type', [CompletionResultType]::ParameterName, 'Only this event type, e.g. auth.login.failed, project.delete, or a short name such as login_failure')
            [CompletionResult]::new('--type', '--type', [CompletionResultType]::ParameterName, 'Only this event type, e.g. auth.login.failed, project.delete, or a short name such as login_failure')
            [CompletionResult]::new('--severity', '--severity', [CompletionResultType]::ParameterName, 'Only these severities: critical, high, medium, low, info')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Only events of this user (a user id or a username)')
            [CompletionResult]::new('--user-id', '--user-id', [CompletionResultType]::ParameterName, 'Only events of the user with this id')
            [CompletionResult]::new('--username', '--username', [CompletionResultType]::ParameterName, 'Only events of this username, and failed logins that tried it')
            [CompletionResult]::new('--resource-type', '--resource-type', [CompletionResultType]::ParameterName, 'Only this kind of object, e.g. project, run, user, model_version')
            [CompletionResult]::new('--resource-id', '--resource-id', [CompletionResultType]::ParameterName, 'Only this object, e.g. mnist')
            [CompletionResult]::new('--resource', '--resource', [CompletionResultType]::ParameterName, 'Only this object as kind:id, e.g. project:mnist')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Only this outcome: success, failure or error; a number is the HTTP status')
            [CompletionResult]::new('--start-date', '--start-date', [CompletionResultType]::ParameterName, 'From this time on (a date, RFC 3339, Unix seconds, or an age such as 24h)')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'From this time on (a date, RFC 3339, Unix seconds, or an age such as 24h)')
            [CompletionResult]::new('--end-date', '--end-date', [CompletionResultType]::ParameterName, 'Up to this time (a date includes its whole day)')
            [CompletionResult]::new('--until', '--until', [CompletionResultType]::ParameterName, 'Up to this time (a date includes its whole day)')
            [CompletionResult]::new('--hours', '--hours', [CompletionResultType]::ParameterName, 'Only the last this many hours')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many events [default: 100; csv: all]')
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'table, json (an array; one object per line with --follow) or csv')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'After the matching events, print new ones as they happen until Ctrl-C')
            [CompletionResult]::new('--follow', '--follow', [CompletionResultType]::ParameterName, 'After the matching events, print new ones as they happen until Ctrl-C')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;audit;stats' {
            [CompletionResult]::new('--hours', '--hours', [CompletionResultType]::ParameterName, 'The window: the last this many hours')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;audit;failed-logins' {
            [CompletionResult]::new('--hours', '--hours', [CompletionResultType]::ParameterName, 'The window: the last this many hours')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many attempts (1–1000)')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;audit;help' {
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'List audit events, newest first; filters combine')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Event counts of the last hours: by category, severity and outcome, logins and failure rate')
            [CompletionResult]::new('failed-logins', 'failed-logins', [CompletionResultType]::ParameterValue, 'Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;audit;help;logs' {
            break
        }
        'wanllmdb;audit;help;stats' {
            break
        }
        'wanllmdb;audit;help;failed-logins' {
            break
        }
        'wanllmdb;audit;help;help' {
            break
        }
        'wanllmdb;server' {
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'Address and port to listen on [default: 127.0.0.1:8000]')
            [CompletionResult]::new('--metrics-bind', '--metrics-bind', [CompletionResultType]::ParameterName, 'Serve /metrics on this address only (e.g. 127.0.0.1:9090), so it can stay off the network the API is on [default: /metrics is served on --bind]')
            [CompletionResult]::new('--public-url', '--public-url', [CompletionResultType]::ParameterName, 'The server''s URL as clients reach it (e.g. https://ml.example.com behind a proxy), used in the absolute upload and download URLs it hands out [default: from each request''s Host]')
            [CompletionResult]::new('--s3-public-endpoint', '--s3-public-endpoint', [CompletionResultType]::ParameterName, 'The S3 endpoint as clients reach it, when it differs from --s3-endpoint (e.g. the server reaches http://minio:9000 but clients https://minio.example.com): presigned URLs are signed for it [default: --s3-endpoint]')
            [CompletionResult]::new('--data-dir', '--data-dir', [CompletionResultType]::ParameterName, 'Directory for the SQLite database, files and the admin key [default: the platform data directory]')
            [CompletionResult]::new('--database-url', '--database-url', [CompletionResultType]::ParameterName, 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]')
            [CompletionResult]::new('--storage-url', '--storage-url', [CompletionResultType]::ParameterName, 'Where file and artifact content is stored: s3://BUCKET[/PREFIX] for S3-compatible object storage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY [/ AWS_SESSION_TOKEN]) [default: <data-dir>/blobs]')
            [CompletionResult]::new('--s3-endpoint', '--s3-endpoint', [CompletionResultType]::ParameterName, 'Endpoint of an S3-compatible service, e.g. http://minio:9000 [default: AWS; also AWS_ENDPOINT_URL]')
            [CompletionResult]::new('--s3-region', '--s3-region', [CompletionResultType]::ParameterName, 'S3 region [default: AWS_REGION, else us-east-1]')
            [CompletionResult]::new('--s3-path-style', '--s3-path-style', [CompletionResultType]::ParameterName, 'Address the bucket in the URL path (MinIO, most S3-compatible services) [default: true with --s3-endpoint]')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'TOML file with any of: bind, metrics_bind, public_url, s3_public_endpoint, data_dir, database_url, storage_url, s3_endpoint, s3_region, s3_path_style, s3_access_key_id, s3_secret_access_key, s3_multipart_threshold, s3_part_size, max_body_bytes, max_inflight_body_bytes, max_run_config_bytes, header_timeout_secs, body_timeout_secs, refresh_grace_secs, heartbeat_timeout_secs, audit_retention_days, allow_registration, jwt_secret, reference_allow_hosts, trusted_proxies')
            [CompletionResult]::new('--max-body-bytes', '--max-body-bytes', [CompletionResultType]::ParameterName, 'Largest accepted request body in bytes, after decompression [default: 67108864]')
            [CompletionResult]::new('--max-inflight-body-bytes', '--max-inflight-body-bytes', [CompletionResultType]::ParameterName, 'Request body bytes all requests together may hold in memory; past it requests are answered 503 with Retry-After [default: 268435456]')
            [CompletionResult]::new('--max-run-config-bytes', '--max-run-config-bytes', [CompletionResultType]::ParameterName, 'Largest run config in bytes of JSON; a larger one is refused with 413 [default: 1048576]')
            [CompletionResult]::new('--header-timeout', '--header-timeout', [CompletionResultType]::ParameterName, 'Seconds a connection may take to send a request''s headers; also how long an idle keep-alive connection is kept open [default: 30]')
            [CompletionResult]::new('--body-timeout', '--body-timeout', [CompletionResultType]::ParameterName, 'Seconds a request body may pause before the request is dropped with 408 [default: 30]')
            [CompletionResult]::new('--log-format', '--log-format', [CompletionResultType]::ParameterName, 'Log lines as text or as JSON objects, one per line (one per request, plus events) [default: text]')
            [CompletionResult]::new('--heartbeat-timeout', '--heartbeat-timeout', [CompletionResultType]::ParameterName, 'Seconds without a heartbeat after which a running run is marked crashed [default: 300]')
            [CompletionResult]::new('--audit-retention-days', '--audit-retention-days', [CompletionResultType]::ParameterName, 'Days to keep audit events; older ones are deleted hourly (0 keeps them forever) [default: 365]')
            [CompletionResult]::new('--allow-registration', '--allow-registration', [CompletionResultType]::ParameterName, 'Let anyone register an account (true) or only administrators create them (false) [default: true]')
            [CompletionResult]::new('--jwt-secret', '--jwt-secret', [CompletionResultType]::ParameterName, 'Secret for signing session tokens; generated and kept in the database when unset')
            [CompletionResult]::new('--reference-allow-host', '--reference-allow-host', [CompletionResultType]::ParameterName, 'Host that artifact references may point at although it resolves to a private address (an exact name, or .example.com for all its subdomains); repeat or separate with commas')
            [CompletionResult]::new('--trusted-proxy', '--trusted-proxy', [CompletionResultType]::ParameterName, 'Reverse proxy (an address or a CIDR network such as 10.0.0.0/8) whose X-Forwarded-For or Forwarded header names the client for audit rows and login limits; repeat or separate with commas. Headers from other peers are ignored [default: none]')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;cache' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('info', 'info', [CompletionResultType]::ParameterValue, 'Show where the cache is, what it holds and its size limit')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove the least recently used content until the cache is within its limit')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;cache;info' {
            [CompletionResult]::new('--max-size', '--max-size', [CompletionResultType]::ParameterName, 'Show the limit this size would give instead of the configured one')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;cache;prune' {
            [CompletionResult]::new('--max-size', '--max-size', [CompletionResultType]::ParameterName, 'Keep at most this much: 20GiB, 500MB, 10% (of the disk) or 0')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Remove every entry, whatever the limit')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Only say what would be removed')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of a table: the API''s own objects, stable and documented')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;cache;help' {
            [CompletionResult]::new('info', 'info', [CompletionResultType]::ParameterValue, 'Show where the cache is, what it holds and its size limit')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove the least recently used content until the cache is within its limit')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;cache;help;info' {
            break
        }
        'wanllmdb;cache;help;prune' {
            break
        }
        'wanllmdb;cache;help;help' {
            break
        }
        'wanllmdb;completions' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;generate-docs' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;guard-program' {
            [CompletionResult]::new('--control-fd', '--control-fd', [CompletionResultType]::ParameterName, 'The read end of the wrapper''s pipe')
            [CompletionResult]::new('--status-file', '--status-file', [CompletionResultType]::ParameterName, 'Where the program''s end is written: `exit N`, `signal N` or `error KIND MESSAGE`')
            [CompletionResult]::new('--grace', '--grace', [CompletionResultType]::ParameterName, 'Seconds between SIGTERM and SIGKILL once the wrapper is gone')
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Server URL [default: from `wanllmdb init`/`login`, else http://127.0.0.1:8000]')
            [CompletionResult]::new('--api-key', '--api-key', [CompletionResultType]::ParameterName, 'API key [default: the one stored by `wanllmdb login`]')
            [CompletionResult]::new('--project', '--project', [CompletionResultType]::ParameterName, 'Project [default: from ./.wanllmdb.toml]')
            [CompletionResult]::new('--own-group', '--own-group', [CompletionResultType]::ParameterName, 'Start the program in a process group of its own')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only data and errors')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Print more about what happens')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'wanllmdb;help' {
            [CompletionResult]::new('login', 'login', [CompletionResultType]::ParameterValue, 'Store an API key for a server (checked against it first)')
            [CompletionResult]::new('logout', 'logout', [CompletionResultType]::ParameterValue, 'Forget the stored API key for a server')
            [CompletionResult]::new('whoami', 'whoami', [CompletionResultType]::ParameterValue, 'Show who the stored key belongs to, and where it came from')
            [CompletionResult]::new('auth', 'auth', [CompletionResultType]::ParameterValue, 'Manage your account: change your password, print the stored API key')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Write ./.wanllmdb.toml (project, host) and create the project if missing')
            [CompletionResult]::new('project', 'project', [CompletionResultType]::ParameterValue, 'Create, list, show and delete projects; manage members')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Track a program: wanllmdb run [OPTIONS] -- CMD [ARGS]…')
            [CompletionResult]::new('log', 'log', [CompletionResultType]::ParameterValue, 'Log metrics (KEY=VALUE… or JSON lines on stdin) or a message to a run')
            [CompletionResult]::new('sync', 'sync', [CompletionResultType]::ParameterValue, 'Upload spooled runs (offline runs, or what an outage left behind)')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Bring history in from other trackers: an MLflow server, TensorBoard event files')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Send history to other trackers: a project to an MLflow server')
            [CompletionResult]::new('runs', 'runs', [CompletionResultType]::ParameterValue, 'List, inspect, compare and change runs')
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'Print or follow a run''s output')
            [CompletionResult]::new('open', 'open', [CompletionResultType]::ParameterValue, 'Print the web page of a run or project, and open it on a desktop')
            [CompletionResult]::new('files', 'files', [CompletionResultType]::ParameterValue, 'Attach files to a run, list them, download them')
            [CompletionResult]::new('artifact', 'artifact', [CompletionResultType]::ParameterValue, 'Version datasets, models and code: put, get, list, alias, reference, lineage')
            [CompletionResult]::new('sweep', 'sweep', [CompletionResultType]::ParameterValue, 'Hyperparameter sweeps (W&B-format configs): create, run agents, inspect, control')
            [CompletionResult]::new('model', 'model', [CompletionResultType]::ParameterValue, 'Model registry: register models, version them, stage, approve, alias, download')
            [CompletionResult]::new('admin', 'admin', [CompletionResultType]::ParameterValue, 'Server administration (administrators only)')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Read the audit log: events, failed logins, statistics (administrators only)')
            [CompletionResult]::new('server', 'server', [CompletionResultType]::ParameterValue, 'Run the tracking server (SQLite + local files by default, or PostgreSQL)')
            [CompletionResult]::new('cache', 'cache', [CompletionResultType]::ParameterValue, 'The local download cache: its size and limit; prune the least recently used content')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print shell completions (bash, zsh, fish, elvish, powershell)')
            [CompletionResult]::new('generate-docs', 'generate-docs', [CompletionResultType]::ParameterValue, 'Write completions/ and man/ into a directory (used to refresh the repository''s copies)')
            [CompletionResult]::new('guard-program', 'guard-program', [CompletionResultType]::ParameterValue, 'Run a program under a guard that stops it when the wrapper dies (the wrapper uses this)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'wanllmdb;help;login' {
            break
        }
        'wanllmdb;help;logout' {
            break
        }
        'wanllmdb;help;whoami' {
            break
        }
        'wanllmdb;help;auth' {
            [CompletionResult]::new('passwd', 'passwd', [CompletionResultType]::ParameterValue, 'Change your password; your other sessions end, API keys keep working')
            [CompletionResult]::new('token', 'token', [CompletionResultType]::ParameterValue, 'Print the API key stored for a server by `wanllmdb login` (for scripts and the Python SDK)')
            break
        }
        'wanllmdb;help;auth;passwd' {
            break
        }
        'wanllmdb;help;auth;token' {
            break
        }
        'wanllmdb;help;init' {
            break
        }
        'wanllmdb;help;project' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a project')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the projects you can see')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a project and its statistics')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a project and all its runs')
            [CompletionResult]::new('members', 'members', [CompletionResultType]::ParameterValue, 'List, add and remove members, or change their role')
            break
        }
        'wanllmdb;help;project;create' {
            break
        }
        'wanllmdb;help;project;list' {
            break
        }
        'wanllmdb;help;project;show' {
            break
        }
        'wanllmdb;help;project;delete' {
            break
        }
        'wanllmdb;help;project;members' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List members and their roles')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Add a user with a role')
            [CompletionResult]::new('remove', 'remove', [CompletionResultType]::ParameterValue, 'Remove a user')
            [CompletionResult]::new('role', 'role', [CompletionResultType]::ParameterValue, 'Change a user''s role')
            break
        }
        'wanllmdb;help;project;members;list' {
            break
        }
        'wanllmdb;help;project;members;add' {
            break
        }
        'wanllmdb;help;project;members;remove' {
            break
        }
        'wanllmdb;help;project;members;role' {
            break
        }
        'wanllmdb;help;run' {
            break
        }
        'wanllmdb;help;log' {
            break
        }
        'wanllmdb;help;sync' {
            break
        }
        'wanllmdb;help;import' {
            [CompletionResult]::new('tensorboard', 'tensorboard', [CompletionResultType]::ParameterValue, 'TensorBoard event files: each directory of them a run, each scalar tag a metric')
            [CompletionResult]::new('mlflow', 'mlflow', [CompletionResultType]::ParameterValue, 'A running MLflow server: experiments, runs, metrics, artifacts, registered models')
            break
        }
        'wanllmdb;help;import;tensorboard' {
            break
        }
        'wanllmdb;help;import;mlflow' {
            break
        }
        'wanllmdb;help;export' {
            [CompletionResult]::new('mlflow', 'mlflow', [CompletionResultType]::ParameterValue, 'To an MLflow server: a project''s runs, metrics, files and registered models')
            break
        }
        'wanllmdb;help;export;mlflow' {
            break
        }
        'wanllmdb;help;runs' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List runs of a project, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one run: state, config, git, host and metric summary')
            [CompletionResult]::new('compare', 'compare', [CompletionResultType]::ParameterValue, 'Compare runs side by side: config differences and summary metrics')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Print a run''s metric history')
            [CompletionResult]::new('plot', 'plot', [CompletionResultType]::ParameterValue, 'Draw runs'' metrics in the terminal (Braille characters at the terminal''s width)')
            [CompletionResult]::new('tag', 'tag', [CompletionResultType]::ParameterValue, 'Add or remove tags')
            [CompletionResult]::new('notes', 'notes', [CompletionResultType]::ParameterValue, 'Replace a run''s notes')
            [CompletionResult]::new('stop', 'stop', [CompletionResultType]::ParameterValue, 'Ask a running run to stop (its wrapper stops the program at the next heartbeat)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a run with its metrics and logs')
            break
        }
        'wanllmdb;help;runs;list' {
            break
        }
        'wanllmdb;help;runs;show' {
            break
        }
        'wanllmdb;help;runs;compare' {
            break
        }
        'wanllmdb;help;runs;history' {
            break
        }
        'wanllmdb;help;runs;plot' {
            break
        }
        'wanllmdb;help;runs;tag' {
            break
        }
        'wanllmdb;help;runs;notes' {
            break
        }
        'wanllmdb;help;runs;stop' {
            break
        }
        'wanllmdb;help;runs;delete' {
            break
        }
        'wanllmdb;help;logs' {
            break
        }
        'wanllmdb;help;open' {
            break
        }
        'wanllmdb;help;files' {
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Attach files or directories to a run (only bytes the server lacks are sent)')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Download a run''s files (all, or the paths given), checking every SHA-256')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List a run''s files')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Detach files from a run')
            break
        }
        'wanllmdb;help;files;put' {
            break
        }
        'wanllmdb;help;files;get' {
            break
        }
        'wanllmdb;help;files;list' {
            break
        }
        'wanllmdb;help;files;delete' {
            break
        }
        'wanllmdb;help;artifact' {
            [CompletionResult]::new('put', 'put', [CompletionResultType]::ParameterValue, 'Log files, directories and references as a new version of an artifact')
            [CompletionResult]::new('get', 'get', [CompletionResultType]::ParameterValue, 'Download a version, checking every digest (content already cached is copied locally)')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List a project''s artifacts')
            [CompletionResult]::new('versions', 'versions', [CompletionResultType]::ParameterValue, 'List the versions of an artifact, newest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a version: details, aliases, files and lineage')
            [CompletionResult]::new('lineage', 'lineage', [CompletionResultType]::ParameterValue, 'Where a version came from (the runs and inputs upstream) and what was made with it, as trees')
            [CompletionResult]::new('alias', 'alias', [CompletionResultType]::ParameterValue, 'Point an alias at a version, or remove it with --remove')
            [CompletionResult]::new('aliases', 'aliases', [CompletionResultType]::ParameterValue, 'List an artifact''s aliases (latest included) and the versions they point at')
            [CompletionResult]::new('cache', 'cache', [CompletionResultType]::ParameterValue, 'Show where the local content cache is and how much it holds; --clear empties it (`wanllmdb cache` shows its size limit and prunes it)')
            [CompletionResult]::new('ref', 'ref', [CompletionResultType]::ParameterValue, 'Log a version made of references to s3://, gs:// or https:// objects')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change an artifact''s description, tags or metadata (a version''s files never change)')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete an artifact with all its versions and aliases')
            break
        }
        'wanllmdb;help;artifact;put' {
            break
        }
        'wanllmdb;help;artifact;get' {
            break
        }
        'wanllmdb;help;artifact;ls' {
            break
        }
        'wanllmdb;help;artifact;versions' {
            break
        }
        'wanllmdb;help;artifact;show' {
            break
        }
        'wanllmdb;help;artifact;lineage' {
            break
        }
        'wanllmdb;help;artifact;alias' {
            break
        }
        'wanllmdb;help;artifact;aliases' {
            break
        }
        'wanllmdb;help;artifact;cache' {
            break
        }
        'wanllmdb;help;artifact;ref' {
            break
        }
        'wanllmdb;help;artifact;update' {
            break
        }
        'wanllmdb;help;artifact;delete' {
            break
        }
        'wanllmdb;help;sweep' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create a sweep from a YAML or JSON config (W&B''s sweep format)')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check a config without creating anything; lists every problem with its path')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the sweeps of the project')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a sweep: state, counts, best run, top runs, parameter importance')
            [CompletionResult]::new('trials', 'trials', [CompletionResultType]::ParameterValue, 'List every trial of a sweep with its parameters and value')
            [CompletionResult]::new('suggest', 'suggest', [CompletionResultType]::ParameterValue, 'Manual mode: reserve the next parameters and a run id to start yourself')
            [CompletionResult]::new('pause', 'pause', [CompletionResultType]::ParameterValue, 'Stop handing out new runs; running ones go on')
            [CompletionResult]::new('resume', 'resume', [CompletionResultType]::ParameterValue, 'Hand out runs again after a pause')
            [CompletionResult]::new('finish', 'finish', [CompletionResultType]::ParameterValue, 'End the sweep: no new runs; running ones finish')
            [CompletionResult]::new('cancel', 'cancel', [CompletionResultType]::ParameterValue, 'End the sweep and stop its running runs')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a sweep; its runs stay as ordinary runs (their notes say which sweep they came from)')
            [CompletionResult]::new('retry-failed', 'retry-failed', [CompletionResultType]::ParameterValue, 'Queue every crashed run to be tried again with the same parameters')
            [CompletionResult]::new('agent', 'agent', [CompletionResultType]::ParameterValue, 'Run trials of a sweep here until it is done (or --count runs)')
            break
        }
        'wanllmdb;help;sweep;create' {
            break
        }
        'wanllmdb;help;sweep;validate' {
            break
        }
        'wanllmdb;help;sweep;list' {
            break
        }
        'wanllmdb;help;sweep;show' {
            break
        }
        'wanllmdb;help;sweep;trials' {
            break
        }
        'wanllmdb;help;sweep;suggest' {
            break
        }
        'wanllmdb;help;sweep;pause' {
            break
        }
        'wanllmdb;help;sweep;resume' {
            break
        }
        'wanllmdb;help;sweep;finish' {
            break
        }
        'wanllmdb;help;sweep;cancel' {
            break
        }
        'wanllmdb;help;sweep;delete' {
            break
        }
        'wanllmdb;help;sweep;retry-failed' {
            break
        }
        'wanllmdb;help;sweep;agent' {
            break
        }
        'wanllmdb;help;model' {
            [CompletionResult]::new('register', 'register', [CompletionResultType]::ParameterValue, 'Register a model in the project (model names are unique on the server)')
            [CompletionResult]::new('ls', 'ls', [CompletionResultType]::ParameterValue, 'List registered models: those of the project, or every one you can read with --all')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a model and its versions, or one version (NAME@ALIAS, NAME/STAGE, NAME:vN)')
            [CompletionResult]::new('versions', 'versions', [CompletionResultType]::ParameterValue, 'List a model''s versions, newest first')
            [CompletionResult]::new('version', 'version', [CompletionResultType]::ParameterValue, 'Create or delete model versions')
            [CompletionResult]::new('transition', 'transition', [CompletionResultType]::ParameterValue, 'Move a version to another stage (Production may need an approval first)')
            [CompletionResult]::new('approve', 'approve', [CompletionResultType]::ParameterValue, 'Approve a version for Production (project admins and owners), or --revoke the approval')
            [CompletionResult]::new('alias', 'alias', [CompletionResultType]::ParameterValue, 'Point an alias at a version, or remove one with --remove ALIAS')
            [CompletionResult]::new('history', 'history', [CompletionResultType]::ParameterValue, 'Who did what to a model (or to one version), oldest first')
            [CompletionResult]::new('update', 'update', [CompletionResultType]::ParameterValue, 'Change a model''s description, tags or approval setting')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a model with all its versions, aliases and history (project admins)')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Show the project''s registry policy, or change it (project admins)')
            [CompletionResult]::new('download', 'download', [CompletionResultType]::ParameterValue, 'Download a model version''s files, checking every digest (as `artifact get` does)')
            break
        }
        'wanllmdb;help;model;register' {
            break
        }
        'wanllmdb;help;model;ls' {
            break
        }
        'wanllmdb;help;model;show' {
            break
        }
        'wanllmdb;help;model;versions' {
            break
        }
        'wanllmdb;help;model;version' {
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Register an artifact version as the next version of a model')
            [CompletionResult]::new('delete', 'delete', [CompletionResultType]::ParameterValue, 'Delete a version (project admins); its artifact version stays')
            break
        }
        'wanllmdb;help;model;version;create' {
            break
        }
        'wanllmdb;help;model;version;delete' {
            break
        }
        'wanllmdb;help;model;transition' {
            break
        }
        'wanllmdb;help;model;approve' {
            break
        }
        'wanllmdb;help;model;alias' {
            break
        }
        'wanllmdb;help;model;history' {
            break
        }
        'wanllmdb;help;model;update' {
            break
        }
        'wanllmdb;help;model;delete' {
            break
        }
        'wanllmdb;help;model;policy' {
            break
        }
        'wanllmdb;help;model;download' {
            break
        }
        'wanllmdb;help;admin' {
            [CompletionResult]::new('gc', 'gc', [CompletionResultType]::ParameterValue, 'Delete stored file contents nothing refers to any more (server administrators only)')
            [CompletionResult]::new('user', 'user', [CompletionResultType]::ParameterValue, 'Accounts: list, show, create, disable, enable, reset passwords, promote, demote (server administrators only)')
            [CompletionResult]::new('api-key', 'api-key', [CompletionResultType]::ParameterValue, 'Every account''s API keys: list and revoke (server administrators only)')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'The server''s version, uptime, CPU, memory, disk, database and blob store (server administrators only)')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Write a consistent backup of the server''s database and local blobs to one file, while the server keeps running (reads the storage directly; no login needed)')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Restore a backup into a new data directory (or an empty database and bucket)')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Check the database''s integrity, every metric chunk''s checksum and every blob''s digest, or a backup file against its manifest; exits with 1 and lists the problems when anything is wrong')
            [CompletionResult]::new('export', 'export', [CompletionResultType]::ParameterValue, 'Export everything (tables as JSON lines, blobs as files) into a directory, to import into another backend')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import an export into an empty database and blob store, then compare counts and checksums with the export')
            [CompletionResult]::new('compact', 'compact', [CompletionResultType]::ParameterValue, 'Rewrite metric chunks stored in an older format in the current one (with a checksum), working on the storage directly; safe while the server runs')
            break
        }
        'wanllmdb;help;admin;gc' {
            break
        }
        'wanllmdb;help;admin;user' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List accounts, oldest first')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show one account')
            [CompletionResult]::new('create', 'create', [CompletionResultType]::ParameterValue, 'Create an account; without --password-stdin a strong password is generated and printed once on stdout')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Disable an account: it cannot log in, and its API keys and sessions are revoked at once')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Let a disabled account log in again (its revoked API keys stay revoked)')
            [CompletionResult]::new('reset-password', 'reset-password', [CompletionResultType]::ParameterValue, 'Set a new password and end the account''s sessions (its API keys are kept)')
            [CompletionResult]::new('promote', 'promote', [CompletionResultType]::ParameterValue, 'Make an account a server administrator')
            [CompletionResult]::new('demote', 'demote', [CompletionResultType]::ParameterValue, 'Make a server administrator an ordinary account')
            break
        }
        'wanllmdb;help;admin;user;list' {
            break
        }
        'wanllmdb;help;admin;user;show' {
            break
        }
        'wanllmdb;help;admin;user;create' {
            break
        }
        'wanllmdb;help;admin;user;disable' {
            break
        }
        'wanllmdb;help;admin;user;enable' {
            break
        }
        'wanllmdb;help;admin;user;reset-password' {
            break
        }
        'wanllmdb;help;admin;user;promote' {
            break
        }
        'wanllmdb;help;admin;user;demote' {
            break
        }
        'wanllmdb;help;admin;api-key' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List active API keys of every account, or of one (never the secrets)')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke an API key of any account, by id')
            break
        }
        'wanllmdb;help;admin;api-key;list' {
            break
        }
        'wanllmdb;help;admin;api-key;revoke' {
            break
        }
        'wanllmdb;help;admin;status' {
            break
        }
        'wanllmdb;help;admin;backup' {
            break
        }
        'wanllmdb;help;admin;restore' {
            break
        }
        'wanllmdb;help;admin;verify' {
            break
        }
        'wanllmdb;help;admin;export' {
            break
        }
        'wanllmdb;help;admin;import' {
            break
        }
        'wanllmdb;help;admin;compact' {
            break
        }
        'wanllmdb;help;audit' {
            [CompletionResult]::new('logs', 'logs', [CompletionResultType]::ParameterValue, 'List audit events, newest first; filters combine')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Event counts of the last hours: by category, severity and outcome, logins and failure rate')
            [CompletionResult]::new('failed-logins', 'failed-logins', [CompletionResultType]::ParameterValue, 'Failed (and rate-limited) logins of the last hours, newest first, with reason and attempts')
            break
        }
        'wanllmdb;help;audit;logs' {
            break
        }
        'wanllmdb;help;audit;stats' {
            break
        }
        'wanllmdb;help;audit;failed-logins' {
            break
        }
        'wanllmdb;help;server' {
            break
        }
        'wanllmdb;help;cache' {
            [CompletionResult]::new('info', 'info', [CompletionResultType]::ParameterValue, 'Show where the cache is, what it holds and its size limit')
            [CompletionResult]::new('prune', 'prune', [CompletionResultType]::ParameterValue, 'Remove the least recently used content until the cache is within its limit')
            break
        }
        'wanllmdb;help;cache;info' {
            break
        }
        'wanllmdb;help;cache;prune' {
            break
        }
        'wanllmdb;help;completions' {
            break
        }
        'wanllmdb;help;generate-docs' {
            break
        }
        'wanllmdb;help;guard-program' {
            break
        }
        'wanllmdb;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
