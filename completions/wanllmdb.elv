
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
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand server 'Run the tracking server (SQLite + local files by default, or PostgreSQL)'
            cand completions 'Print shell completions (bash, zsh, fish, elvish, powershell)'
            cand generate-docs 'Write completions/ and man/ into a directory (used to refresh the repository''s copies)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;server'= {
            cand --bind 'Address and port to listen on [default: 127.0.0.1:8080]'
            cand --data-dir 'Directory for the SQLite database, files and the admin key [default: the platform data directory]'
            cand --database-url 'Database: sqlite://FILE or postgres://USER:PASSWORD@HOST/DB [default: SQLite in the data directory]'
            cand --config 'TOML file with any of: bind, data_dir, database_url, max_body_bytes, heartbeat_timeout_secs, allow_registration, jwt_secret'
            cand --max-body-bytes 'Largest accepted request body in bytes, after decompression [default: 67108864]'
            cand --heartbeat-timeout 'Seconds without a heartbeat after which a running run is marked crashed [default: 300]'
            cand --allow-registration 'Let anyone register an account (true) or only administrators create them (false) [default: true]'
            cand --jwt-secret 'Secret for signing session tokens; generated and kept in the database when unset'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;completions'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;generate-docs'= {
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'wanllmdb;help'= {
            cand server 'Run the tracking server (SQLite + local files by default, or PostgreSQL)'
            cand completions 'Print shell completions (bash, zsh, fish, elvish, powershell)'
            cand generate-docs 'Write completions/ and man/ into a directory (used to refresh the repository''s copies)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'wanllmdb;help;server'= {
        }
        &'wanllmdb;help;completions'= {
        }
        &'wanllmdb;help;generate-docs'= {
        }
        &'wanllmdb;help;help'= {
        }
    ]
    $completions[$command]
}
