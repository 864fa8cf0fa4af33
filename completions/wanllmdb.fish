# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_wanllmdb_global_optspecs
    string join \n h/help V/version
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

complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "server" -d 'Run the tracking server (SQLite + local files by default, or PostgreSQL)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "completions" -d 'Print shell completions (bash, zsh, fish, elvish, powershell)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "generate-docs" -d 'Write completions/ and man/ into a directory (used to refresh the repository\'s copies)'
complete -c wanllmdb -n "__fish_wanllmdb_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l bind -d 'Address and port to listen on [default: 127.0.0.1:8080]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l data-dir -d 'Directory for the SQLite database, files and the admin key [default: the platform data directory]' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l database-url -d 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l config -d 'TOML file with any of: bind, data_dir, database_url, max_body_bytes, heartbeat_timeout_secs, allow_registration, jwt_secret' -r -F
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l max-body-bytes -d 'Largest accepted request body in bytes, after decompression [default: 67108864]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l heartbeat-timeout -d 'Seconds without a heartbeat after which a running run is marked crashed [default: 300]' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l allow-registration -d 'Let anyone register an account (true) or only administrators create them (false) [default: true]' -r -f -a "true\t''
false\t''"
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -l jwt-secret -d 'Secret for signing session tokens; generated and kept in the database when unset' -r
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand server" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand completions" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand completions" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand generate-docs" -s h -l help -d 'Print help'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand generate-docs" -s V -l version -d 'Print version'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from server completions generate-docs help" -f -a "server" -d 'Run the tracking server (SQLite + local files by default, or PostgreSQL)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from server completions generate-docs help" -f -a "completions" -d 'Print shell completions (bash, zsh, fish, elvish, powershell)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from server completions generate-docs help" -f -a "generate-docs" -d 'Write completions/ and man/ into a directory (used to refresh the repository\'s copies)'
complete -c wanllmdb -n "__fish_wanllmdb_using_subcommand help; and not __fish_seen_subcommand_from server completions generate-docs help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
