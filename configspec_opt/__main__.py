from configspec_opt.cli import main

main()
