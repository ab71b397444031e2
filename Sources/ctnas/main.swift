print("ctnas")
