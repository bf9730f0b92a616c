from unops.cli import main

main()
