from bookql.cli import main

main()
