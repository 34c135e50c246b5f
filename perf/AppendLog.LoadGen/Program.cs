Console.WriteLine("LoadGen: not built yet.");
