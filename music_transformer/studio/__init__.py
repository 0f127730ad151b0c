"""`music-transformer studio`: a local web app to continue a primer, audition candidates,
pick one and keep going — a tree of takes per piece, kept in a folder on disk.

generation.py  the one door into `music_transformer.generation` (read, sample, write, command)
pieces.py      piece folders: primer, piece.json (the tree), takes, audio; ids and uploads checked
jobs.py        one generation worker, a queue, cancel within one decoding step, abandoned jobs
service.py     Studio: requests checked, takes kept, notes for the rolls, audio, commands
blind.py       blind A/B trials, exported as `compare`'s key.json and answers.json
primers.py     the bundled primers
app.py         the page and the JSON API (Starlette); templates/ and static/ hold the page
server.py      serve(): bind, print the URL, open the browser, run until Ctrl-C
"""
